"""The report's figures of accuracy over the task sequence (matplotlib, Agg backend: no display
needed). Each function draws one figure for one benchmark's groups, saves it as PNG and returns its
path; ``styles`` gives each method the colour and marker it has in every figure of the report.
Tasks are numbered from 1, as in the tables."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np

from retain.metrics.matrix import MIN_RUNS_FOR_INTERVAL, confidence_interval
from retain.report.data import Group
from retain.report.style import PAGE_WIDTH, plt, save, styled

Styles = dict[str, tuple[str, str]]


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 3)
    return math.ceil(n / cols), cols


def task_ticks(T: int) -> list[int]:
    """1-based task numbers to label on an axis of T tasks: all up to 10, then 1 and every 5th."""
    if T <= 10:
        return list(range(1, T + 1))
    step = 5 if T <= 50 else 10
    return [1] + list(range(step, T + 1, step))


def _title(label: str) -> str:
    return "\n".join(textwrap.wrap(label, 34)) or label


def _panels(groups: list[Group], panel_h: float, **kw):
    rows, cols = _grid(len(groups))
    fig, axes = plt().subplots(rows, cols, figsize=(min(PAGE_WIDTH, 3.3 * cols + 0.9), panel_h * rows + 0.4),
                               squeeze=False, layout="constrained", **kw)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    return fig, axes


def _matrix_groups(groups: list[Group]) -> list[Group]:
    """The groups trained task by task (a final-only method such as joint has no matrix to draw)."""
    return [g for g in groups if g.matrix_runs()] or groups[:1]


@styled
def heatmaps(groups: list[Group], path: Path, styles: Styles) -> Path:
    """The mean accuracy matrix of each method: row i = after training task i, column j = task j;
    the upper triangle (tasks not trained yet) is greyed out."""
    groups = _matrix_groups(groups)
    fig, axes = _panels(groups, 3.1)
    cmap = plt().get_cmap("viridis").with_extremes(bad="#e8e8e8")
    im = None
    for ax, g in zip(axes.flat, groups):
        R = g.mean_matrix()
        if R is None:
            ax.axis("off")
            continue
        R = R * 100
        T = R.shape[0]
        untrained = np.triu(np.ones_like(R, dtype=bool), k=1)
        im = ax.imshow(np.ma.masked_array(R, untrained), vmin=0, vmax=100, cmap=cmap)
        if T <= 10:
            for i, j in zip(*np.nonzero(~untrained)):
                ax.text(j, i, f"{R[i, j]:.0f}", ha="center", va="center", fontsize=8 if T <= 6 else 7,
                        color="white" if R[i, j] < 60 else "black")
        ax.set_title(_title(g.label))
        ax.set_xlabel("evaluated on task")
        ax.set_ylabel("after training task")
        ticks = task_ticks(T)
        ax.set_xticks([t - 1 for t in ticks], [str(t) for t in ticks])
        ax.set_yticks([t - 1 for t in ticks], [str(t) for t in ticks])
    if im is not None:
        fig.colorbar(im, ax=axes, label="accuracy %", shrink=min(0.9, 1.2 / len(axes)))
    return save(fig, path)


@styled
def task_accuracy(groups: list[Group], path: Path, styles: Styles) -> Path:
    """Each task's accuracy over the sequence, one panel per method (mean over runs)."""
    groups = _matrix_groups(groups)
    fig, axes = _panels(groups, 2.7, sharey=True)
    T_max = max((g.mean_matrix().shape[0] for g in groups if g.mean_matrix() is not None), default=1)
    colours = plt().get_cmap("viridis")(np.linspace(0, 0.9, T_max))
    for ax, g in zip(axes.flat, groups):
        R = g.mean_matrix()
        if R is None:
            continue
        R = R * 100
        T = R.shape[0]
        for j in range(T):
            ax.plot(range(j + 1, T + 1), R[j:, j], marker="o", ms=3, color=colours[j], label=f"task {j + 1}")
        ax.set_title(_title(g.label))
        ax.set_xlabel("tasks trained")
        ax.set_ylabel("accuracy %")
        ax.set_ylim(0, 103)  # headroom: lines at 100% stay visible
        ax.set_xticks(task_ticks(T))
    if T_max <= 10:
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside upper center", ncol=min(T_max, 10), frameon=False)
    else:
        from matplotlib.colors import BoundaryNorm, ListedColormap

        norm = BoundaryNorm(np.arange(0.5, T_max + 1.5), T_max)  # one colour per task, as drawn
        sm = plt().cm.ScalarMappable(cmap=ListedColormap(colours), norm=norm)
        fig.colorbar(sm, ax=axes, label="task", shrink=min(0.9, 1.2 / len(axes)), ticks=task_ticks(T_max))
    return save(fig, path)


def _band(values: np.ndarray) -> np.ndarray | None:
    """Per column, the 95% CI half-width over the rows; None under MIN_RUNS_FOR_INTERVAL rows."""
    if len(values) < MIN_RUNS_FOR_INTERVAL:
        return None
    return np.array([confidence_interval(col)[1] for col in values.T])


#: Up to this many methods share one panel of average accuracy; past it each gets its own panel
#: (its band in colour over the others' means in grey): nine overlapping bands are unreadable.
BANDS_IN_ONE = 5


def _average_panels(groups: list[Group], path: Path, styles: Styles) -> Path:
    """One small panel per method: its mean and 95% band, every other method's mean in grey."""
    fig, axes = _panels(groups, 2.4, sharey=True, sharex=True)
    means = {g.label: (np.arange(1, c.shape[1] + 1), c.mean(0) * 100) for g in groups
             if (c := g.curves()) is not None}
    T_max = max([len(x) for x, _ in means.values()] + [1])
    for ax, g in zip(axes.flat, groups):
        colour, marker = styles[g.label]
        for label, (x, mean) in means.items():
            if label != g.label:
                ax.plot(x, mean, color="#c9ced4", lw=1, zorder=1)
        curves = g.curves()
        if curves is None:  # final only (joint): its level
            acc = np.array(g.values("avg_acc")) * 100
            if len(acc):
                ax.axhline(acc.mean(), color=colour, ls="--", lw=1.5)
        else:
            x, mean = means[g.label]
            ax.plot(x, mean, marker=marker, ms=4 if len(x) <= 10 else 2, color=colour, zorder=3)
            half = _band(curves * 100)
            if half is not None:
                ax.fill_between(x, mean - half, mean + half, color=colour, alpha=0.25, lw=0, zorder=2)
        ax.set_title(_title(g.label))
        ax.set_ylim(0, 103)
        ax.set_xticks(task_ticks(T_max))
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("tasks trained")
    for ax in axes[:, 0]:
        ax.set_ylabel("avg acc on seen %")
    return save(fig, path)


@styled
def average_accuracy(groups: list[Group], path: Path, styles: Styles) -> Path:
    """Average accuracy over the tasks seen so far, after each task; band = 95% CI over runs
    (none under 3 runs). A method measured only at the end (joint) is a dashed line at its level.
    Past :data:`BANDS_IN_ONE` methods, one panel each (the others' means in grey)."""
    if len(groups) > BANDS_IN_ONE:
        return _average_panels(groups, path, styles)
    fig, ax = plt().subplots(figsize=(PAGE_WIDTH, 4.6), layout="constrained")
    T_max = max([c.shape[1] for g in groups if (c := g.curves()) is not None] + [1])
    for g in groups:
        colour, marker = styles[g.label]
        curves = g.curves()
        if curves is None:
            acc = np.array(g.values("avg_acc")) * 100
            if len(acc):
                ax.axhline(acc.mean(), color=colour, ls="--", lw=1.5, label=f"{g.label} (final only)")
                half = _band(acc[:, None])
                if half is not None:
                    ax.axhspan(acc.mean() - half[0], acc.mean() + half[0], color=colour, alpha=0.12)
            continue
        curves = curves * 100
        x = np.arange(1, curves.shape[1] + 1)
        mean = curves.mean(0)
        ax.plot(x, mean, marker=marker, ms=5 if len(x) <= 10 else 3, color=colour, label=g.label)
        half = _band(curves)
        if half is not None:
            ax.fill_between(x, mean - half, mean + half, color=colour, alpha=0.15, lw=0)
    ax.set_xticks(task_ticks(T_max))
    ax.set_xlabel("tasks trained")
    ax.set_ylabel("average accuracy on seen tasks %")
    ax.set_ylim(0, 103)  # headroom: lines at 100% stay visible
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", frameon=False)
    return save(fig, path)


from retain.report.plots_summary import accuracy_forgetting_bars, accuracy_vs_cost, memory_bars  # noqa: E402

#: (file suffix, caption, function), in the order the report shows them.
FIGURES = [
    ("heatmaps", "Accuracy matrix per method (mean over runs; %). Grey: tasks not trained yet", heatmaps),
    ("task-accuracy", "Each task's accuracy over the sequence (mean over runs)", task_accuracy),
    ("average-accuracy", "Average accuracy on the tasks seen so far, after each task (band: 95% CI over runs, "
                         "shown from 3 runs; past 5 methods one panel each, the others' means in grey)",
     average_accuracy),
    ("accuracy-forgetting", "Final average accuracy and forgetting per method (bar: mean; whisker: 95% CI, "
                            "shown from 3 runs; dots: single runs)", accuracy_forgetting_bars),
    ("accuracy-vs-cost", "Final average accuracy against training time and peak memory per run, log axes "
                         "(whiskers: 95% CI from 3 runs; dashed: Pareto front; *N: trained as vectorised ensembles "
                         "of N runs, each run's time its 1/N share)", accuracy_vs_cost),
    ("memory", "Memory the method holds itself (its buffer and state beyond the model, MB, the largest after any "
               "task) beside the peak memory of its runs' processes (data, model, torch included)", memory_bars),
]
