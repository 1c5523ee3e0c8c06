"""Diagnostics: pure functions over accuracy matrices, activations, buffer statistics and task
data that name what went wrong in a run and what to do about it.

Every probe returns plain floats; every check returns a list of *events*, dicts with the keys
the store's ``events`` table holds: ``task``, ``kind``, ``value``, ``threshold``, ``message``
(the message ends with a plain recommendation). The wiring into the run loop is
:mod:`retain.diagnostics.probes`.
"""

from __future__ import annotations

from typing import Any

Event = dict[str, Any]


def make_event(kind: str, task: int | None, value: float, threshold: float, message: str) -> Event:
    """One diagnostic event as the store keeps it."""
    return {"task": task, "kind": kind, "value": float(value), "threshold": float(threshold), "message": message}


__all__ = ["Event", "make_event"]
