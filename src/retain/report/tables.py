"""The report's tables, built from the store's runs. ``±`` is the half-width of the 95% Student-t
confidence interval over a group's runs (seeds and task orders); under
:data:`~retain.metrics.matrix.MIN_RUNS_FOR_INTERVAL` runs a cell shows the mean and n only. The
metric columns are every metric registered when the table is made
(:mod:`retain.metrics.registry`), computed from the stored accuracy matrices."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from retain.metrics.matrix import format_mean_ci
from retain.metrics.registry import METRICS, Metric
from retain.report import descriptions
from retain.report.data import Group, reference, scenario_of
from retain.report.document import Table

#: Said by every header whose cells may hold an interval.
CI = "mean ± 95% CI"


def with_ci(title: str) -> str:
    """``avg acc % (mean ± 95% CI)``; a title ending in a parenthesis gets it inside that one."""
    return f"{title[:-1]}; {CI})" if title.endswith(")") else f"{title} ({CI})"


@dataclass(frozen=True)
class Measure:
    """One column of the results table: per-run values in the unit its title names."""

    key: str  # the CSV column, unit included
    title: str
    digits: int
    values: Callable[[Group, list[Group]], list[float]]


def _metric(name: str, scale: float = 1.0) -> Callable[[Group, list[Group]], list[float]]:
    return lambda g, _groups: [v * scale for v in g.values(name)]


def reduction_values(g: Group, groups: list[Group]) -> list[float]:
    """Forgetting reduction against naive in %, per run relative to naive's mean forgetting; empty
    for a method that records no forgetting (joint) or when no naive ran in the same setup."""
    ref = reference(g, groups)
    if ref is None or ref is g or not ref.has("forgetting") or not g.has("forgetting"):
        return []
    base = float(np.mean(ref.values("forgetting")))
    return [100.0 * (base - f) / base for f in g.values("forgetting")] if base > 0 else []


REDUCTION = Measure("forgetting_reduction_pct", "forgetting reduction vs naive %", 1, reduction_values)
#: The columns after the metrics: what a method saves against naive, and what it costs.
COSTS = (
    REDUCTION,
    Measure("train_s", "train time s", 2, _metric("train_seconds")),
    Measure("wall_s", "wall time s", 2, _metric("wall_seconds")),
    Measure("peak_mem_mb_per_run", "peak memory MB (per run)", 0, _metric("peak_mem_mb")),
)


def metric_measure(m: Metric) -> Measure:
    """The column of a registered metric: ``avg_acc_pct`` / ``avg acc %`` for a percentage."""
    return Measure(m.key, m.title, m.digits, _metric(m.name, m.scale))


def measures() -> tuple[Measure, ...]:
    """The results table's columns: every registered metric in registration order (the built-ins
    first), then :data:`COSTS`."""
    return tuple(metric_measure(m) for m in METRICS.in_order()) + COSTS


def params_of(g: Group) -> str:
    params = g.values("trainable_params")
    return f"{int(params[0]):,}" if params else "—"


def _budget(cfg: dict[str, Any]) -> str:
    parts = [f"{cfg.get('epochs')} epoch(s)/task", f"batch {cfg.get('batch_size')}", f"lr {cfg.get('lr')}",
             str(cfg.get("optimizer"))]
    buffer = {k: v for k, v in (cfg.get("params") or {}).items() if "buffer" in k or "memory" in k}
    parts += [f"{k.replace('_', ' ')} {v}" for k, v in sorted(buffer.items())]
    return ", ".join(parts)


def setup_table(groups: list[Group]) -> Table:
    """One row per group: what the runs had in common (the scenario as run), their seeds and orders."""
    rows = []
    for g in groups:
        c = g.config
        backbone = c.get("backbone", "?") + (f" {'-'.join(map(str, c['hidden']))}"
                                              if c.get("backbone") == "mlp" and c.get("hidden") else "")
        rows.append([g.label, scenario_of(g.runs[0]), "/".join(map(str, g.num_tasks())), backbone, _budget(c),
                     ", ".join(map(str, sorted({r.seed for r in g.runs}))),
                     ", ".join(map(str, sorted({r.config.get("order", 0) for r in g.runs}))), str(len(g.runs))])
    return Table(["method", "scenario", "tasks", "backbone", "budget", "seeds", "orders", "runs"], rows,
                 ["l", "l", "r", "l", "l", "l", "l", "r"])


#: The time columns: for a run trained in a vectorised ensemble, its share of the ensemble's time.
TIMES = ("train_s", "wall_s")


def ensemble_note(g: Group) -> str:
    """``1/5 of an ensemble``: how a batched group's times were measured ("" for runs on their own)."""
    sizes = [n for n in g.ensemble_sizes() if n > 1]
    return f"1/{'/'.join(map(str, sizes))} of an ensemble" if sizes else ""


def results_table(groups: list[Group]) -> Table:
    columns = measures()
    rows = []
    for g in groups:
        cells = [format_mean_ci(m.values(g, groups), scale=1.0, digits=m.digits) for m in columns]
        note = ensemble_note(g)
        for i, m in enumerate(columns):  # a member's time is a share, not a measurement: no ± 0.0
            if note and m.key in TIMES and m.values(g, groups):
                cells[i] = f"{np.mean(m.values(g, groups)):.{m.digits}f} ({note})"
        if reference(g, groups) is g:
            cells[columns.index(REDUCTION)] = "reference"
        rows.append([g.label, str(len(g.runs)), *cells, params_of(g)])
    return Table(["method", "runs"] + [with_ci(m.title) for m in columns] + ["trainable params"], rows)


def cost_ratio(g: Group, groups: list[Group]) -> float | None:
    """Mean training time over naive's (training only: warm-up and evaluation are not the method's);
    None unless both were trained the same way (each run on its own, or in ensembles of one size:
    a member's time is its share of its ensemble's, which a run on its own does not compare with)."""
    ref = reference(g, groups)
    if ref is None or not ref.values("train_seconds") or not g.values("train_seconds"):
        return None
    if not like_for_like(g, ref):
        return None
    return float(np.mean(g.values("train_seconds")) / np.mean(ref.values("train_seconds")))


def like_for_like(a: Group, b: Group) -> bool:
    """Whether the two groups' times were measured alike: one ensemble size, the same for both."""
    return len(a.ensemble_sizes()) == 1 and a.ensemble_sizes() == b.ensemble_sizes()


def _trained(g: Group) -> str:
    sizes = g.ensemble_sizes()
    return "one by one" if sizes == [1] else f"in ensembles of {'/'.join(map(str, sizes))}"


def _cost_cell(g: Group, groups: list[Group]) -> str:
    cost, ref = cost_ratio(g, groups), reference(g, groups)
    if cost:
        return f"{cost:.2f}x"
    if ref is not None and g.values("train_seconds") and ref.values("train_seconds") and not like_for_like(g, ref):
        return f"— (not like for like: {g.label} trained {_trained(g)}, {ref.label} {_trained(ref)})"
    return "—"


def comparison_table(groups: list[Group]) -> Table:
    """Against naive in the same setup: what each method saves and costs, and what it is."""
    rows = []
    for g in groups:
        red = reduction_values(g, groups)
        rows.append([g.label, "reference" if reference(g, groups) is g else format_mean_ci(red, scale=1.0),
                     _cost_cell(g, groups), descriptions.summary(g.strategy),
                     descriptions.cost(g.strategy)])
    return Table(["method", with_ci("forgetting reduction %"), "compute cost (train time vs naive)", "what it does",
                  "memory and compute"], rows, ["l", "r", "r", "l", "l"])


def task_ranges(tasks: set[int]) -> str:
    """``1, 3–5``: task numbers with runs of consecutive ones joined."""
    out: list[list[int]] = []
    for t in sorted(tasks):
        if out and t == out[-1][1] + 1:
            out[-1][1] = t
        else:
            out.append([t, t])
    return ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in out) or "—"


#: Event kinds that are facts of the benchmark's data, the same for every method: one row.
BENCHMARK_FACTS = ("task_dissimilarity",)
ALL_METHODS = "(the benchmark)"


def diagnostics_table(groups: list[Group], events: dict[int, list[dict[str, Any]]]) -> Table | None:
    """One row per (method, kind of event): how many runs raised it, at which tasks (1-based), an example."""
    seen: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: {"runs": set(), "tasks": set(), "msg": ""})
    for g in groups:
        for r in g.runs:
            for e in events.get(r.id, []):
                row = seen[(g.label, e["kind"])]
                row["runs"].add(r.id)
                if e.get("task") is not None:
                    row["tasks"].add(int(e["task"]) + 1)  # stored 0-based, shown as people count
                row["msg"] = row["msg"] or e["message"]
    if not seen:
        return None
    totals = {g.label: len(g.runs) for g in groups}
    data = sorted(k for k in seen if k[1] in BENCHMARK_FACTS)  # one row for the benchmark, not one a method
    for label, kind in data:
        row = seen.pop((label, kind))
        fact = seen.setdefault((ALL_METHODS, kind), {"runs": set(), "tasks": set(), "msg": row["msg"]})
        fact["runs"] |= row["runs"]
        fact["tasks"] |= row["tasks"]
    totals[ALL_METHODS] = sum(len(g.runs) for g in groups)
    rows = [[label, kind, f"{len(v['runs'])}/{totals[label]}", task_ranges(v["tasks"]), v["msg"]]
            for (label, kind), v in sorted(seen.items(), key=lambda kv: (kv[0][0] != ALL_METHODS, kv[0]))]
    return Table(["method", "warning", "runs", "tasks", "example"], rows, ["l", "l", "r", "l", "l"])
