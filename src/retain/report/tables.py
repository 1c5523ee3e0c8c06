"""The report's tables, computed from grouped runs: setup, results (mean ± 95% CI over seeds and
task orders), the comparison against naive, and the diagnostics from the store's events."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from retain.metrics import confidence_interval
from retain.report.data import Group, reference
from retain.report.descriptions import complexity
from retain.report.document import Table

_PERCENT = [("avg_acc", "avg acc %"), ("forgetting", "forgetting %"), ("bwt", "BWT %"), ("fwt", "FWT %"),
            ("learning_acc", "learning acc %")]


def fmt_ci(ci: tuple[float, float] | None, scale: float = 1.0, digits: int = 1) -> str:
    if ci is None:
        return "—"
    mean, half = ci
    return f"{mean * scale:.{digits}f} ± {half * scale:.{digits}f}" if half else f"{mean * scale:.{digits}f}"


def _budget(cfg: dict[str, Any]) -> str:
    parts = [f"{cfg.get('epochs')} epoch(s)/task", f"batch {cfg.get('batch_size')}", f"lr {cfg.get('lr')}",
             str(cfg.get("optimizer"))]
    buffer = {k: v for k, v in (cfg.get("params") or {}).items() if "buffer" in k or "memory" in k}
    parts += [f"{k.replace('_', ' ')} {v}" for k, v in sorted(buffer.items())]
    return ", ".join(parts)


def setup_table(groups: list[Group]) -> Table:
    """One row per group: what the runs had in common, and their seeds and orders."""
    rows = []
    for g in groups:
        c = g.config
        backbone = c.get("backbone", "?") + (f" {'-'.join(map(str, c['hidden']))}"
                                              if c.get("backbone") == "mlp" and c.get("hidden") else "")
        tasks = {len(r["acc_matrix"]) for r in g.runs}
        rows.append([g.label, str(c.get("scenario") or "benchmark default"), "/".join(map(str, sorted(tasks))),
                     backbone, _budget(c), ", ".join(map(str, sorted({r["seed"] for r in g.runs}))),
                     ", ".join(map(str, sorted({r["config"].get("order", 0) for r in g.runs}))), str(len(g.runs))])
    return Table(["method", "scenario", "tasks", "backbone", "budget", "seeds", "orders", "runs"], rows,
                 ["l", "l", "r", "l", "l", "l", "l", "r"])


def _reduction(g: Group, groups: list[Group]) -> tuple[float, float] | None:
    """Forgetting reduction against naive in %, per run relative to naive's mean forgetting."""
    ref = reference(g, groups)
    if ref is None or not ref.values("forgetting"):
        return None
    base = float(np.mean(ref.values("forgetting")))
    if base <= 0:
        return None
    return confidence_interval([100.0 * (base - f) / base for f in g.values("forgetting")])


def _cost(g: Group, groups: list[Group]) -> float | None:
    """Mean training time over naive's (training only: warm-up and evaluation are not the method's)."""
    ref = reference(g, groups)
    if ref is None or not ref.values("train_seconds") or not g.values("train_seconds"):
        return None
    return float(np.mean(g.values("train_seconds")) / np.mean(ref.values("train_seconds")))


def results_table(groups: list[Group]) -> Table:
    rows = []
    for g in groups:
        red = _reduction(g, groups)
        params = g.values("trainable_params")
        rows.append([g.label, str(len(g.runs))] + [fmt_ci(g.ci(k), 100.0) for k, _ in _PERCENT]
                    + [fmt_ci(red) if red else "—", fmt_ci(g.ci("train_seconds"), digits=2),
                       fmt_ci(g.ci("wall_seconds"), digits=2),
                       fmt_ci(g.ci("peak_mem_mb"), digits=0), f"{int(params[0]):,}" if params else "—"])
    header = ["method", "runs"] + [t for _, t in _PERCENT] + ["forgetting reduction vs naive %", "train time s",
                                                               "wall time s",
                                                               "peak memory MB", "trainable params"]
    return Table(header, rows)


def comparison_table(groups: list[Group]) -> Table:
    """The seed's comparison table, rebuilt from measurements."""
    rows = []
    for g in groups:
        red, cost = _reduction(g, groups), _cost(g, groups)
        rows.append([g.label, fmt_ci(red) + (" %" if red else ""), f"{cost:.2f}x" if cost else "—",
                     complexity(g.strategy)])
    return Table(["method", "forgetting reduction", "compute cost (train time vs naive)", "complexity"], rows,
                 ["l", "r", "r", "l"])


def diagnostics_table(groups: list[Group], events: dict[int, list[dict[str, Any]]]) -> Table | None:
    """One row per (method, kind of event): how many runs raised it, at which tasks, an example."""
    seen: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: {"runs": set(), "tasks": set(), "msg": ""})
    for g in groups:
        for r in g.runs:
            for e in events.get(r["id"], []):
                row = seen[(g.label, e["kind"])]
                row["runs"].add(r["id"])
                if e.get("task") is not None:
                    row["tasks"].add(int(e["task"]))
                row["msg"] = row["msg"] or e["message"]
    if not seen:
        return None
    totals = {g.label: len(g.runs) for g in groups}
    rows = [[label, kind, f"{len(v['runs'])}/{totals[label]}", ", ".join(map(str, sorted(v["tasks"]))) or "—",
             v["msg"]] for (label, kind), v in sorted(seen.items())]
    return Table(["method", "warning", "runs", "tasks", "example"], rows, ["l", "l", "r", "l", "l"])
