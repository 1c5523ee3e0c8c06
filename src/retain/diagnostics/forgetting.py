"""Sudden forgetting: how far each earlier task fell from its best accuracy, and an event when
one new task knocked an earlier one down by more than a threshold.

Forgetting follows Chaudhry et al. 2018 (drop from the best earlier accuracy); accuracies are
fractions in [0, 1], thresholds too (0.10 = 10 points).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from retain.diagnostics import Event, make_event

RECOMMEND = ("add or enlarge a replay buffer (e.g. --strategy er), or raise the regularisation "
             "strength (e.g. ewc's lambda)")
#: A drop of an earlier task in one new task larger than this (10 points) is an event; the same
#: default as the run-time probes' ``ProbeConfig.forgetting_threshold``.
THRESHOLD = 0.10


def _rows(R: Sequence[Sequence[float]], t: int) -> np.ndarray:
    a = np.array([list(r) for r in R[: t + 1]], dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != t + 1 or a.shape[1] < t + 1:
        raise ValueError(f"need rows 0..{t} of the accuracy matrix, each with >= {t + 1} columns")
    return a


def drops_from_best(R: Sequence[Sequence[float]], t: int) -> list[float]:
    """For each task j < t: max_{j<=l<t} R[l][j] - R[t][j] (the drop from its best so far)."""
    a = _rows(R, t)
    return [float(a[j:t, j].max() - a[t, j]) for j in range(t)]


def step_drops(R: Sequence[Sequence[float]], t: int) -> list[float]:
    """For each task j < t: R[t-1][j] - R[t][j], what training task t alone cost task j."""
    a = _rows(R, t)
    return [float(a[t - 1, j] - a[t, j]) for j in range(t)]


def forgetting_probes(R: Sequence[Sequence[float]], t: int) -> dict[str, float]:
    """Probe values after task t: the largest and mean drop from best over earlier tasks."""
    d = drops_from_best(R, t)
    return {"forget_max_drop": max(d) if d else 0.0, "forget_mean_drop": float(np.mean(d)) if d else 0.0}


def sudden_forgetting_events(R: Sequence[Sequence[float]], t: int, threshold: float = THRESHOLD, *,
                             advice: str = RECOMMEND) -> list[Event]:
    """One event after task t (0-based, as stored) if some earlier task lost more than
    ``threshold`` in this one task; the message numbers tasks from 1 and ends with ``advice``
    (none when empty: the bounds get none, see retain.diagnostics.advice).

    A single event names the worst task and how many tasks crossed the threshold, so a long
    run of naive fine-tuning does not produce one event per task pair.
    """
    if threshold < 0:
        raise ValueError(f"forgetting threshold must be >= 0, got {threshold}")
    d = step_drops(R, t)
    over = [j for j, v in enumerate(d) if v > threshold]
    if not over:
        return []
    worst = max(over, key=lambda j: d[j])
    msg = (f"sudden forgetting: training task {t + 1} dropped task {worst + 1} by {100 * d[worst]:.1f} points "
           f"({len(over)} earlier task(s) lost more than {100 * threshold:.0f})")
    msg = f"{msg}; {advice}" if advice else msg
    return [make_event("sudden_forgetting", t, d[worst], threshold, msg)]


def run_forgetting_events(R: Sequence[Sequence[float]], threshold: float = THRESHOLD, *,
                          advice: str = RECOMMEND) -> list[Event]:
    """Every sudden-forgetting event of a whole run, from its full accuracy matrix: what the
    probes raise task by task (:func:`sudden_forgetting_events` after each task t >= 1)."""
    return [e for t in range(1, len(R)) for e in sudden_forgetting_events(R, t, threshold, advice=advice)]
