"""Terminal output: progress bars and result tables (rich)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from retain.metrics.matrix import format_mean_ci

console = Console(stderr=True)


def make_progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=False)


def _fmt(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    return format_mean_ci(values, scale=scale, digits=digits) if values else "—"


def results_table(records: list[dict[str, Any]], title: str = "Results") -> Table:
    """Mean ± 95% CI half-width over seeds/orders of each (benchmark, strategy) group of finished
    runs (the mean and n under 3 runs); "—" for a metric a strategy does not define (joint)."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        if r["status"] == "finished":
            groups[(r["benchmark"], r["strategy"])].append(r)
    table = Table(title=title, title_justify="left", caption="mean ± 95% CI half-width over seeds and orders",
                  caption_justify="left")
    for col in ("strategy", "runs", "avg acc %", "forgetting %", "learning acc %",
                "BWT %", "time s"):
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for (bench, strat), rs in sorted(groups.items()):
        label = strat if len({b for b, _ in groups}) == 1 else f"{bench}/{strat}"
        table.add_row(label, str(len(rs)), *(_fmt([r["metrics"][k] for r in rs if k in r["metrics"]])
                                             for k in ("avg_acc", "forgetting", "learning_acc", "bwt")),
                      _fmt([r["wall_seconds"] for r in rs], scale=1.0))
    return table
