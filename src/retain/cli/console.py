"""Terminal output: progress bars and result tables (rich)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from retain.metrics.matrix import format_mean_ci
from retain.metrics.registry import BUILTIN, METRICS, metrics_of

console = Console(stderr=True)


def make_progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=False)


def _fmt(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    return format_mean_ci(values, scale=scale, digits=digits) if values else "—"


#: The built-in metrics the terminal table shows, in this order (FWT is in the report); every
#: metric from elsewhere (a plugin) follows them.
TERMINAL_METRICS = ("avg_acc", "forgetting", "learning_acc", "bwt")


def results_table(records: list[dict[str, Any]], title: str = "Results") -> Table:
    """Mean ± 95% CI half-width over seeds/orders of each (benchmark, strategy) group of finished
    runs (the mean and n under 3 runs); "—" for a metric a strategy does not define (joint).
    Metrics are computed from each run's accuracy matrix (:mod:`retain.metrics.registry`)."""
    groups: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    wall: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in records:
        if r.status == "finished":
            groups[(r.benchmark, r.strategy)].append(metrics_of(r))
            wall[(r.benchmark, r.strategy)].append(r.wall_seconds)
    shown = [METRICS.get(n) for n in TERMINAL_METRICS] + [m for m in METRICS.in_order() if m.name not in BUILTIN]
    table = Table(title=title, title_justify="left", caption="mean ± 95% CI half-width over seeds and orders",
                  caption_justify="left")
    for col in ("strategy", "runs", *(m.title for m in shown), "time s"):
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for (bench, strat), rs in sorted(groups.items()):
        label = strat if len({b for b, _ in groups}) == 1 else f"{bench}/{strat}"
        cells = [_fmt([r[m.name] for r in rs if m.name in r], scale=m.scale, digits=m.digits) for m in shown]
        table.add_row(label, str(len(rs)), *cells,
                      _fmt(wall[(bench, strat)], scale=1.0))
    return table
