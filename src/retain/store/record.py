"""The one shape a run travels in: the record a worker returns, the row the store keeps and what
reports, tables and warnings read back (:class:`RunRecord`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from retain.errors import StoreError


@dataclass
class RunRecord:
    """One run, finished or failed. Written by :func:`retain.execution.execute.execute`, saved in
    one transaction by :meth:`retain.store.Store.save_run`, read back by :meth:`Store.runs` (which
    attaches the accuracy matrix; per-task probes and events are read with ``Store.probes`` and
    ``Store.events``). Metrics shown anywhere are recomputed from ``acc_matrix`` and ``baseline``
    (retain.metrics.registry); ``metrics`` keeps the values computed when the run ended."""

    run_key: str
    study: str
    benchmark: str
    strategy: str
    seed: int
    status: str  # "finished" or "failed"
    config: dict[str, Any]  # the resolved run (what its key hashes)
    task_order: list[int] = field(default_factory=list)
    acc_matrix: list[list[float]] = field(default_factory=list)
    baseline: list[float] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    task_seconds: list[float] = field(default_factory=list)
    eval_seconds: list[float] = field(default_factory=list)
    losses: list[float | None] = field(default_factory=list)
    wall_seconds: float | None = None
    peak_mem_mb: float | None = None
    trainable_params: int | None = None
    probes: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    versions: dict[str, Any] = field(default_factory=dict)
    revision: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # order, threads, scenario, stats, command ...
    id: int | None = None  # the store's row id, once stored

    @property
    def order(self) -> int:
        return int((self.extra or {}).get("order", 0))

    @property
    def train_seconds(self) -> float | None:
        """Training time alone (no data loading, model building or evaluation): the fair compute
        cost, since a worker's first run also pays the process's warm-up in its wall time."""
        return float(sum(self.task_seconds)) if self.task_seconds else None

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    # Access by field name, for code and notebooks written against the earlier dict records; the
    # fields stay the dataclass's own (an unknown name is a KeyError, not a new key).
    def __getitem__(self, name: str) -> Any:
        if name not in _READABLE:
            raise KeyError(name)
        return getattr(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name) if name in _READABLE else default

    def __contains__(self, name: str) -> bool:
        return name in _READABLE

    def __setitem__(self, name: str, value: Any) -> None:
        if name not in _FIELDS:
            raise KeyError(f"a run record has no field {name!r}")
        setattr(self, name, value)

    def __or__(self, changes: dict[str, Any]) -> RunRecord:
        """A copy with ``changes`` (field name -> value); an unknown field is a KeyError."""
        unknown = sorted(set(changes) - _FIELDS)
        if unknown:
            raise KeyError(f"a run record has no field(s) {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_mapping(cls, data: Any) -> RunRecord:
        """A record from a mapping with these field names (a store row, a dict written by older
        code); a missing required field or an unknown one is a StoreError naming it."""
        if isinstance(data, RunRecord):
            return data
        unknown = sorted(set(data) - _FIELDS)
        if unknown:
            raise StoreError(f"run record: unknown field(s) {', '.join(unknown)}")
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                   and f.name not in data]
        if missing:
            raise StoreError(f"run record: missing field(s) {', '.join(missing)}")
        return cls(**{k: v for k, v in data.items() if v is not None or k in _NULLABLE})


_FIELDS = frozenset(f.name for f in dataclasses.fields(RunRecord))
_READABLE = _FIELDS | {"order", "train_seconds"}
_NULLABLE = frozenset({"baseline", "wall_seconds", "peak_mem_mb", "trainable_params", "error", "revision",
                       "started_at", "finished_at", "id"})
