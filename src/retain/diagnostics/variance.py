"""Variance across seeds and task orders: mean, std and the 95% Student-t interval of each metric
over the runs of one (benchmark, strategy) group, and an alarm only when the intervals are wide
enough to change a conclusion.

The rule: rank the groups of a benchmark by a metric; a set of neighbours in that ranking whose
95% intervals all overlap one another (and whose means differ) is a set whose order is not
established. Sets are the largest such runs of neighbours, so overlaps are never chained: with
naive 51 ± 4, X 70 ± 20 and ER 89 ± 2, naive and X overlap, X and ER overlap, and naive and ER
(which do not) are never named together. A fixed width threshold would fire by construction at the default 3 seeds
(t = 4.30 makes every interval wide) even when methods are far apart; this rule fires only where
the ranking is in doubt. Groups with fewer than ``retain.metrics.matrix.MIN_RUNS_FOR_INTERVAL`` runs
have no interval and are left out of the ranking. Works on store or run records (dicts with
``benchmark``, ``strategy``, ``status``, ``acc_matrix``, ``baseline``): the metrics are computed
from each run's accuracy matrix through :mod:`retain.metrics.registry`, so any registered metric
can be checked, for runs recorded before it existed too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from retain.diagnostics import Event, make_event
from retain.metrics.matrix import MIN_RUNS_FOR_INTERVAL, confidence_interval, format_mean_ci, mean_std
from retain.metrics.registry import METRICS, metrics_of

RECOMMEND = "more seeds (--seeds) narrow the intervals"


def interval(values: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """n, mean, std, the interval's half-width ``half`` and its ends [low, high] (half 0 for one value)."""
    if len(values) == 0:
        raise ValueError("need at least one value")
    mean, std = mean_std(values)
    _, half = confidence_interval(values, level)
    return {"n": float(len(values)), "mean": mean, "std": std, "half": half, "low": mean - half,
            "high": mean + half}


def _finished_groups(records: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, float]]]:
    """(benchmark, strategy) -> the metrics of each finished run, computed from its matrix."""
    groups: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    for r in records:
        if r.get("status", "finished") == "finished":
            groups[(r.benchmark, r.strategy)].append(metrics_of(r))
    return groups


def group_intervals(records: list[dict[str, Any]], metrics: Sequence[str] = ("avg_acc", "forgetting"),
                    level: float = 0.95) -> dict[tuple[str, str], dict[str, dict[str, float]]]:
    """(benchmark, strategy) -> metric -> interval, over the finished runs of each group."""
    return {g: {m: interval([r[m] for r in rs], level) for m in metrics
                if all(m in r for r in rs)} for g, rs in sorted(_finished_groups(records).items())}


@dataclass(frozen=True)
class Overlap:
    """Neighbours in the ranking of one metric on one benchmark whose 95% intervals overlap."""

    benchmark: str
    metric: str
    strategies: tuple[str, ...]  # best first, neighbours whose intervals all overlap one another
    values: tuple[tuple[float, ...], ...]  # each strategy's per-run values

    def describe(self) -> str:
        """e.g. ``er 76.0 ± 3.1 and der 75.2 ± 2.0`` (%); ± is the 95% CI half-width."""
        scale = METRICS.get(self.metric).scale if self.metric in METRICS else 100.0
        parts = [f"{s} {format_mean_ci(v, scale=scale)}" for s, v in zip(self.strategies, self.values)]
        return ", ".join(parts[:-1]) + f" and {parts[-1]}"


def overlapping_rankings(records: list[dict[str, Any]],
                         metrics: Sequence[str] = ("avg_acc", "forgetting")) -> list[Overlap]:
    """Every largest set of neighbours (in the ranking of a metric, per benchmark) whose 95%
    intervals all overlap one another while their means differ: their order is not established.
    On a line, intervals that overlap pairwise share a point, so a set is a run of neighbours
    whose highest lower end is below their lowest upper end; a set inside a larger one is not
    reported again."""
    values: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(dict)
    for (bench, strat), rs in sorted(_finished_groups(records).items()):
        for m in metrics:
            if len(rs) >= MIN_RUNS_FOR_INTERVAL and all(m in r for r in rs):
                values[(bench, m)][strat] = [float(r[m]) for r in rs]
    out = []
    for (bench, m), by_strat in values.items():
        sign = -1.0 if m not in METRICS or METRICS.get(m).higher_is_better else 1.0  # best first
        ranked = sorted(by_strat, key=lambda s: sign * mean_std(by_strat[s])[0])
        ci = [confidence_interval(by_strat[s]) for s in ranked]
        lows, highs = [mean - half for mean, half in ci], [mean + half for mean, half in ci]
        reach = -1  # the last index a reported set ended at: a set ending there or before is inside it
        for i in range(len(ranked)):
            low, high, j = lows[i], highs[i], i
            while j + 1 < len(ranked) and max(low, lows[j + 1]) < min(high, highs[j + 1]):
                j += 1
                low, high = max(low, lows[j]), min(high, highs[j])
            if j > reach and j > i and len({ci[k][0] for k in range(i, j + 1)}) > 1:
                members = ranked[i: j + 1]
                out.append(Overlap(bench, m, tuple(members), tuple(tuple(by_strat[s]) for s in members)))
                reach = j
    return out


def title(metric: str) -> str:
    """``avg acc %``: the metric's label, with its unit when it is a percentage (a name no longer
    registered is taken for a percentage, as every metric before the registry was)."""
    return METRICS.get(metric).title if metric in METRICS else f"{metric} %"


def variance_events(records: list[dict[str, Any]],
                    metrics: Sequence[str] = ("avg_acc", "forgetting")) -> list[Event]:
    """One ``high_variance`` event per chain of :func:`overlapping_rankings` (value: the gap
    between the chain's first two means; threshold: the sum of their half-widths)."""
    out = []
    for o in overlapping_rankings(records, metrics):
        (m0, h0), (m1, h1) = confidence_interval(o.values[0]), confidence_interval(o.values[1])
        n = sorted({len(v) for v in o.values})
        msg = (f"{o.benchmark}, {title(o.metric)}: {o.describe()} overlap (± 95% CI, "
               f"n={'/'.join(map(str, n))}), so their order is not established; {RECOMMEND}")
        out.append(make_event("high_variance", None, abs(m0 - m1), h0 + h1, msg))
    return out
