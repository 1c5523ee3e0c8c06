"""Variance across seeds and task orders: mean, std and a 95% Student-t interval of each metric
over the runs of one (benchmark, strategy) group, and an event when the interval is too wide to
tell strategies apart. Works on store records (dicts with ``benchmark``, ``strategy``,
``metrics``, ``status``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from retain.diagnostics import Event, make_event
from retain.metrics import confidence_interval, mean_std

RECOMMEND = "run more seeds (--seeds) and shuffled task orders (--orders) before comparing strategies"


def interval(values: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """n, mean, std and the confidence interval [low, high] and its full width."""
    if len(values) == 0:
        raise ValueError("need at least one value")
    mean, std = mean_std(values)
    _, half = confidence_interval(values, level)
    return {"n": float(len(values)), "mean": mean, "std": std, "low": mean - half, "high": mean + half,
            "width": 2 * half}


def group_intervals(records: list[dict[str, Any]], metrics: Sequence[str] = ("avg_acc", "forgetting"),
                    level: float = 0.95) -> dict[tuple[str, str], dict[str, dict[str, float]]]:
    """(benchmark, strategy) -> metric -> interval, over the finished runs of each group."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r.get("status", "finished") == "finished":
            groups[(r["benchmark"], r["strategy"])].append(r)
    return {g: {m: interval([r["metrics"][m] for r in rs], level) for m in metrics
                if all(m in r["metrics"] for r in rs)} for g, rs in sorted(groups.items())}


def variance_events(records: list[dict[str, Any]], *, max_width: float = 0.05,
                    metrics: Sequence[str] = ("avg_acc", "forgetting")) -> list[Event]:
    """Events for every group and metric whose 95% interval is wider than ``max_width`` (a
    fraction: 0.05 = 5 points). Groups with a single run have no interval and are skipped."""
    out = []
    for (bench, strat), by_metric in group_intervals(records, metrics).items():
        for m, ci in by_metric.items():
            if ci["n"] >= 2 and ci["width"] > max_width:
                msg = (f"high variance: {strat} on {bench}, {m} = {100 * ci['mean']:.1f} with a 95% interval "
                       f"{100 * ci['width']:.1f} points wide over {int(ci['n'])} runs "
                       f"(threshold {100 * max_width:.0f}); {RECOMMEND}")
                out.append(make_event("high_variance", None, ci["width"], max_width, msg))
    return out
