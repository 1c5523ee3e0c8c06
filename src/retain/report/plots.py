"""The report's figures (matplotlib, Agg backend: no display needed). Each function draws one
figure for one benchmark's groups, saves it as PNG and returns its path."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from retain.report.data import Group

_DPI = 110


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)  # headless: never try to open a window
    import matplotlib.pyplot as plt

    return plt


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 3)
    return math.ceil(n / cols), cols


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    _plt().close(fig)
    return path


def heatmaps(groups: list[Group], path: Path) -> Path:
    """The mean accuracy matrix of each method: row i = after training task i, column j = task j."""
    plt = _plt()
    rows, cols = _grid(len(groups))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.8 * rows), squeeze=False)
    for ax, g in zip(axes.flat, groups):
        R = g.mean_matrix() * 100
        im = ax.imshow(R, vmin=0, vmax=100, cmap="viridis")
        T = R.shape[0]
        if T <= 10:
            for i in range(T):
                for j in range(T):
                    ax.text(j, i, f"{R[i, j]:.0f}", ha="center", va="center", fontsize=7,
                            color="white" if R[i, j] < 60 else "black")
        ax.set_title(g.label, fontsize=9)
        ax.set_xlabel("evaluated on task")
        ax.set_ylabel("after training task")
        ax.set_xticks(range(T), [str(t + 1) for t in range(T)])
        ax.set_yticks(range(T), [str(t + 1) for t in range(T)])
        fig.colorbar(im, ax=ax, fraction=0.046, label="accuracy %")
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    return _save(fig, path)


def task_accuracy(groups: list[Group], path: Path) -> Path:
    """Each task's accuracy over the sequence, one panel per method (mean over runs)."""
    plt = _plt()
    rows, cols = _grid(len(groups))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False, sharey=True)
    for ax, g in zip(axes.flat, groups):
        R = g.mean_matrix() * 100
        T = R.shape[0]
        for j in range(T):
            ax.plot(range(j + 1, T + 1), R[j:, j], marker="o", ms=3, label=f"task {j + 1}")
        ax.set_title(g.label, fontsize=9)
        ax.set_xlabel("tasks trained")
        ax.set_ylabel("accuracy %")
        ax.set_ylim(0, 103)  # headroom: lines at 100% stay visible
        ax.set_xticks(range(1, T + 1))
    list(axes.flat)[0].legend(fontsize=7, ncol=2)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    return _save(fig, path)


def average_accuracy(groups: list[Group], path: Path) -> Path:
    """Average accuracy over the tasks seen so far, after each task; band = ±1 std over runs."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for g in groups:
        curves = g.curves() * 100
        x = np.arange(1, curves.shape[1] + 1)
        mean, std = curves.mean(0), curves.std(0)
        ax.plot(x, mean, marker="o", ms=3, label=g.label)
        ax.fill_between(x, mean - std, mean + std, alpha=0.15)
    ax.set_xticks(range(1, max(g.curves().shape[1] for g in groups) + 1))
    ax.set_xlabel("tasks trained")
    ax.set_ylabel("average accuracy on seen tasks %")
    ax.set_ylim(0, 103)  # headroom: lines at 100% stay visible
    ax.legend(fontsize=8)
    return _save(fig, path)


def forgetting_bars(groups: list[Group], path: Path) -> Path:
    """Mean forgetting per method with 95% confidence intervals."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(groups) + 2), 3.8))
    cis = [g.ci("forgetting") or (0.0, 0.0) for g in groups]
    ax.bar(range(len(groups)), [m * 100 for m, _ in cis], yerr=[h * 100 for _, h in cis], capsize=4,
           color=[f"C{i}" for i in range(len(groups))])
    ax.set_xticks(range(len(groups)), [g.label for g in groups], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("forgetting % (mean ± 95% CI)")
    ax.axhline(0, color="black", lw=0.8)
    return _save(fig, path)


def forgetting_vs_cost(groups: list[Group], path: Path) -> Path:
    """Forgetting against training time per run, with 95% confidence intervals on both."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for i, g in enumerate(groups):
        (fm, fh), (tm, th) = g.ci("forgetting") or (0.0, 0.0), g.ci("train_seconds") or (0.0, 0.0)
        ax.errorbar(tm, fm * 100, xerr=th, yerr=fh * 100, fmt="o", color=f"C{i}", capsize=3, label=g.label)
    ax.set_xlabel("training time per run, s")
    ax.set_ylabel("forgetting %")
    ax.legend(fontsize=8)
    return _save(fig, path)


#: (file suffix, caption, function), in the order the report shows them.
FIGURES = [
    ("heatmaps", "Accuracy matrix per method (mean over runs; %)", heatmaps),
    ("task-accuracy", "Each task's accuracy over the sequence", task_accuracy),
    ("average-accuracy", "Average accuracy on the tasks seen so far, after each task", average_accuracy),
    ("forgetting", "Forgetting per method (mean ± 95% CI)", forgetting_bars),
    ("forgetting-vs-cost", "Forgetting against compute cost", forgetting_vs_cost),
]
