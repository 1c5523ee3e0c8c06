"""The report's figures of final numbers per method: accuracy and forgetting bars with every run
shown, and accuracy against cost (time, memory) with the Pareto front. Whiskers are the 95%
Student-t interval over runs, drawn only from :data:`~retain.metrics.matrix.MIN_RUNS_FOR_INTERVAL` runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from retain.metrics.matrix import MIN_RUNS_FOR_INTERVAL, confidence_interval
from retain.report.data import METHOD_STATE, Group
from retain.report.style import PAGE_WIDTH, plt, save, styled

Styles = dict[str, tuple[str, str]]


def _mean_half(values: Sequence[float]) -> tuple[float, float | None]:
    mean, half = confidence_interval(values)
    return mean, half if len(values) >= MIN_RUNS_FOR_INTERVAL else None


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (cost, accuracy) points no other point beats, i.e. none has a cost as low and
    an accuracy as high with one of them strictly better; ordered by increasing cost."""
    front = []
    for i, (c, a) in enumerate(points):
        beaten = any((c2 <= c and a2 >= a) and (c2 < c or a2 > a) for c2, a2 in points)
        if not beaten:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


def _bar(ax, y: int, values: np.ndarray, color) -> float | None:
    """One method's horizontal bar at row ``y``: its mean, whiskers from 3 runs; None (and a note) when
    nothing was measured."""
    if not len(values):
        ax.text(0, y, "  not measured", va="center", ha="left", fontsize=9, color="#59636e")
        return None
    mean, half = _mean_half(values)
    ax.barh(y, mean, color=color, alpha=0.75, height=0.7)
    if half is not None:
        ax.errorbar(mean, y, xerr=half, color="black", capsize=4, lw=1.2)
    return mean


def _bars(ax, groups: list[Group], metric: str, styles: Styles, xlabel: str) -> None:
    """Horizontal bars (methods top to bottom in table order), whiskers from 3 runs, one dot a run."""
    rng = np.random.default_rng(0)  # the same jitter every time the report is rendered
    for y, g in enumerate(groups):
        values = np.array(g.values(metric)) * 100
        if _bar(ax, y, values, styles[g.label][0]) is not None:
            ax.scatter(values, y + rng.uniform(-0.2, 0.2, len(values)), s=14, color="black", zorder=3, lw=0)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)


@styled
def accuracy_forgetting_bars(groups: list[Group], path: Path, styles: Styles) -> Path:
    """Final average accuracy and forgetting per method, each run a dot."""
    fig, (acc, fgt) = plt().subplots(1, 2, figsize=(PAGE_WIDTH, 1.2 + 0.42 * len(groups)), sharey=True,
                                     layout="constrained")
    _bars(acc, groups, "avg_acc", styles, "final average accuracy %")
    _bars(fgt, groups, "forgetting", styles, "forgetting %")
    acc.set_yticks(range(len(groups)), [g.label for g in groups])
    acc.set_ylim(len(groups) - 0.5, -0.5)  # first method on top, as in the tables
    return save(fig, path)


#: Up to this many methods every point is labelled; past it only the Pareto front is, and a legend
#: names the rest (twenty labels in one panel hide each other and the points).
LABEL_ALL = 10


def _shown_label(g: Group) -> str:
    """The method's label, ``*N`` added when its runs trained as vectorised ensembles of N (their
    times are 1/N shares of the ensemble's, not runs timed alone)."""
    sizes = [n for n in g.ensemble_sizes() if n > 1]
    return g.label + (f" *{'/'.join(map(str, sizes))}" if sizes else "")


def _cost_panel(ax, groups: list[Group], cost: str, styles: Styles, xlabel: str) -> list:
    """One point per method (mean; whiskers from 3 runs); returns the legend handles drawn."""
    points, shown, handles = [], [], []
    for g in groups:
        acc, x = np.array(g.values("avg_acc")) * 100, np.array(g.values(cost))
        if not len(acc) or not len(x) or (x <= 0).any():
            continue
        (am, ah), (xm, xh) = _mean_half(acc), _mean_half(x)
        colour, marker = styles[g.label]
        handles.append(ax.errorbar(xm, am, xerr=None if xh is None else [[min(xh, xm * 0.99)], [xh]], yerr=ah,
                                   fmt=marker, color=colour, ms=7, capsize=3, lw=1, label=_shown_label(g)))
        points.append((xm, am))
        shown.append(g)
    front = pareto_front(points)
    if len(front) > 1:
        fx, fy = zip(*(points[i] for i in front))
        ax.step(fx, fy, where="post", ls="--", color="#59636e", lw=1, zorder=0)
    labelled = range(len(points)) if len(points) <= LABEL_ALL else front
    for i in labelled:
        ax.annotate(_shown_label(shown[i]), points[i], xytext=(6, 5), textcoords="offset points", fontsize=9,
                    color=styles[shown[i].label][0], bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none",
                                                               alpha=0.8),
                    arrowprops=dict(arrowstyle="-", color="#8c959f", lw=0.6, shrinkA=0, shrinkB=3))
    ax.set_xscale("log")
    if points:  # room for the labels right of the points, on a log axis
        lo, hi = min(p[0] for p in points), max(p[0] for p in points)
        ax.set_xlim(lo / 1.3, hi * 1.3 * max(1.0, (hi / lo) ** 0.25))
        _plain_log_ticks(ax, *ax.get_xlim())
    ax.set_xlabel(xlabel)
    ax.set_ylabel("final average accuracy %")
    ax.grid(alpha=0.3)
    return handles if len(points) > LABEL_ALL else []


def _plain_log_ticks(ax, lo: float, hi: float) -> None:
    """Tick labels as plain numbers (0.5, 20, 400), enough of them even within one decade."""
    from matplotlib import ticker

    if hi / lo < 10:  # less than a decade shows: linear-looking nice values, still on the log scale
        ax.xaxis.set_major_locator(ticker.MaxNLocator(5))
    else:
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())


def spread_labels(fig, panels: list[list], pad_px: float = 1.0) -> None:
    """Move overlapping point labels of each panel apart vertically (in order of height), so none
    hides another; their leader lines keep them tied to their points."""
    if not any(panels):
        return
    fig.draw_without_rendering()  # final positions: constrained layout runs at draw time
    renderer = fig.canvas.get_renderer()
    for texts in panels:
        placed = []
        for t in sorted(texts, key=lambda t: t.get_window_extent(renderer).y0):
            box = t.get_window_extent(renderer)
            shift = 0.0
            for other in placed:
                moved = box.translated(0, shift)
                if moved.overlaps(other):
                    shift += other.y1 - moved.y0 + pad_px
            if shift:
                x, y = t.get_position()
                t.set_position((x, y + shift * 72.0 / fig.dpi))  # offset points: px -> pt
            placed.append(box.translated(0, shift))


@styled
def accuracy_vs_cost(groups: list[Group], path: Path, styles: Styles) -> Path:
    """Accuracy against training time and against peak memory, one point a method (mean over runs)."""
    many = len(groups) > LABEL_ALL
    fig, (time_ax, mem_ax) = plt().subplots(1, 2, figsize=(PAGE_WIDTH, 4.6 + (0.25 * len(groups) / 3 if many else 0)),
                                            layout="constrained")
    handles = _cost_panel(time_ax, groups, "train_seconds", styles, "training time per run, s (log)")
    handles = _cost_panel(mem_ax, groups, "peak_mem_mb", styles, "peak memory per run, MB (log)") or handles
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=3, frameon=False)
    spread_labels(fig, [list(time_ax.texts), list(mem_ax.texts)])
    return save(fig, path)


@styled
def memory_bars(groups: list[Group], path: Path, styles: Styles) -> Path:
    """Per method, what it holds itself (its buffer and state beyond the model, the largest after
    any task) beside its runs' peak process memory, which also counts the data, the model, the
    interpreter and torch: two bars a method, mean over runs (whiskers: 95% CI from 3 runs)."""
    fig, (held, peak) = plt().subplots(1, 2, figsize=(PAGE_WIDTH, 1.2 + 0.42 * len(groups)), sharey=True,
                                       layout="constrained")
    for ax, name, xlabel in ((held, METHOD_STATE, "memory the method holds: buffer and state, MB"),
                             (peak, "peak_mem_mb", "peak process memory per run, MB")):
        for y, g in enumerate(groups):
            mean = _bar(ax, y, np.array(g.values(name)), styles[g.label][0])
            if mean is not None:
                ax.text(mean, y, f" {mean:.3g}", va="center", ha="left", fontsize=8)
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
        ax.margins(x=0.15)
    held.set_yticks(range(len(groups)), [g.label for g in groups])
    held.set_ylim(len(groups) - 0.5, -0.5)  # first method on top, as in the tables
    return save(fig, path)
