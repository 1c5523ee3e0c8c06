"""The events of a stored run as a report or the terminal warnings show them: the kinds that
depend only on the accuracy matrix are computed again from the stored matrix (so a changed rule
applies to old runs too), the others (collapse, buffer, dissimilarity, divergence: they need
activations, buffers or data) are as stored. The probes also store the matrix kinds at run time;
those stored copies are left out, so each fact shows once."""

from __future__ import annotations

import math
from typing import Any

from retain.diagnostics import Event, advice, forgetting
from retain.metrics.registry import trained_once

#: Event kinds computed from the accuracy matrix alone.
FROM_MATRIX = ("sudden_forgetting",)


def matrix_events(run: dict[str, Any]) -> list[Event]:
    """The events the accuracy matrix of ``run`` gives: sudden forgetting, with the advice for
    the strategy's family; none for a run trained once (joint: its early rows are untrained)."""
    R = run.get("acc_matrix")
    if not R or trained_once(run):
        return []
    family = advice.family_of(run.get("strategy") or "")
    return forgetting.run_forgetting_events(R, advice=advice.advice("sudden_forgetting", family))


def events_of(run: dict[str, Any], stored: list[Event] | None = None) -> list[Event]:
    """Every event of ``run`` in task order: :func:`matrix_events` plus the ``stored`` events
    (default: the run's own ``events``) of other kinds. A run without a matrix (a failed one)
    keeps its stored events as they are."""
    stored = list(run.get("events") or []) if stored is None else list(stored)
    if not run.get("acc_matrix"):
        return stored
    merged = matrix_events(run) + [e for e in stored if e.get("kind") not in FROM_MATRIX]
    return sorted(merged, key=lambda e: e["task"] if isinstance(e.get("task"), int) else math.inf)
