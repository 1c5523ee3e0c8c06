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


#: Shorter column titles for the terminal, so the built-in columns fit 80 characters.
SHORT_TITLES = {"learning_acc": "learn acc %"}


def results_table(records: list[dict[str, Any]], title: str = "Results") -> Table:
    """Mean ± 95% CI half-width over seeds/orders of each (benchmark, strategy) group of finished
    runs (the mean and n under 3 runs); "—" for a metric a strategy does not define (joint).
    Metrics are computed from each run's accuracy matrix (:mod:`retain.metrics.registry`).
    ``time s`` is the mean wall time of a run; a run trained in a vectorised ensemble of N
    (``--seeds`` batched) has the ensemble's time / N, marked ``*N`` (its share, without a spread
    of its own). Without borders and with short titles the built-in columns fit 80 characters.
    Rows are in :func:`retain.report.style.method_order` (naive first, the upper bounds last), the
    order of the report's tables and plots too."""
    from retain.report.data import ensemble_size

    groups: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    wall: dict[tuple[str, str], list[float]] = defaultdict(list)
    sizes: dict[tuple[str, str], set[int]] = defaultdict(set)
    for r in records:
        if r.status == "finished":
            groups[(r.benchmark, r.strategy)].append(metrics_of(r))
            wall[(r.benchmark, r.strategy)].append(r.wall_seconds)
            sizes[(r.benchmark, r.strategy)].add(ensemble_size(r))
    shown = [METRICS.get(n) for n in TERMINAL_METRICS] + [m for m in METRICS.in_order() if m.name not in BUILTIN]
    batched = sorted({n for s in sizes.values() for n in s if n > 1})
    caption = "mean ± 95% CI half-width over seeds and orders; time s: wall time per run (mean)"
    if batched:
        caption += ("; *N: trained as one vectorised ensemble of N runs, each run's time is the ensemble's / N "
                    "(compare it only with runs of the same N)")
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left", box=None,
                  padding=(0, 1), pad_edge=False, header_style="bold underline")
    for col in ("strategy", "runs", *(SHORT_TITLES.get(m.name, m.title) for m in shown), "time s"):
        table.add_column(col, justify="left" if col == "strategy" else "right", no_wrap=col != "strategy")
    from retain.report.style import method_order

    benches = list(dict.fromkeys(b for b, _ in groups))
    for (bench, strat), rs in sorted(groups.items(), key=lambda kv: (benches.index(kv[0][0]),
                                                                      method_order(kv[0][1]))):
        label = strat if len({b for b, _ in groups}) == 1 else f"{bench}/{strat}"
        cells = [_fmt([r[m.name] for r in rs if m.name in r], scale=m.scale, digits=m.digits) for m in shown]
        n = sorted(sizes[(bench, strat)])
        mark = "" if n == [1] else "*" + "/".join(str(k) for k in n if k > 1)
        times = wall[(bench, strat)]
        table.add_row(label, str(len(rs)), *cells, f"{sum(times) / len(times):.1f}{mark}")
    return table
