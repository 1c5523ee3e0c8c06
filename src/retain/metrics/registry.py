"""The metrics a report shows, by name: each a pure function ``fn(R, baseline)`` of one run's
accuracy matrix (``R[i][j]``: accuracy on task j after training task i) and the untrained
model's row ``baseline`` (None when the run did not record one), returning a float, or None when
the metric does not apply to that run.

Reports compute every registered metric from the stored matrices when they are made, so a
metric registered today shows for runs recorded before it existed. Metrics come from here (the
built-ins, :mod:`retain.metrics.matrix`), from code that calls :func:`register_metric`, and from
installed packages through the entry-point group ``retain.metrics`` (an entry point names a
module, or an object in one, whose import registers its metrics), loaded the first time the
registry is consulted."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from retain.errors import ConfigError
from retain.metrics import matrix
from retain.registry import Registry

MetricFn = Callable[[matrix.Matrix, "Sequence[float] | None"], "float | None"]
ENTRY_POINT_GROUP = "retain.metrics"


@dataclass(frozen=True)
class Metric:
    """One registered metric and how to show it: ``label`` names it in tables (``avg acc``),
    ``percent`` says its values are fractions shown x100 with a ``%``, ``higher_is_better`` which
    way a ranking by it runs, ``needs_baseline`` that it is skipped for runs without a baseline row."""

    name: str
    label: str
    higher_is_better: bool
    percent: bool
    needs_baseline: bool
    description: str
    fn: MetricFn

    @property
    def title(self) -> str:
        """The column title: ``avg acc %`` for a percentage, the label otherwise."""
        return f"{self.label} %" if self.percent else self.label

    @property
    def key(self) -> str:
        """The CSV column stem, unit included: ``avg_acc_pct`` for a percentage."""
        return f"{self.name}_pct" if self.percent else self.name

    @property
    def scale(self) -> float:
        """What a value is multiplied by for display: 100 for a percentage."""
        return 100.0 if self.percent else 1.0

    @property
    def digits(self) -> int:
        """Decimals shown: 1 for a percentage (a tenth of a point), 3 otherwise."""
        return 1 if self.percent else 3


class MetricRegistry(Registry[Metric]):
    """A :class:`~retain.registry.Registry` that loads the installed packages' metrics the first
    time it is consulted, and keeps the order metrics were registered in (the built-ins first)."""

    def __init__(self) -> None:
        super().__init__("metric")
        self._loaded = False

    def _ready(self) -> None:
        if not self._loaded:
            self._loaded = True  # first: a plugin that looks the registry up while loading must not recurse
            load_entry_points()

    def get(self, name: str) -> Metric:
        self._ready()
        return super().get(name)

    def names(self, pattern: str = "*") -> list[str]:
        self._ready()
        return super().names(pattern)

    def items(self) -> list[tuple[str, Metric]]:
        self._ready()
        return super().items()

    def __contains__(self, name: str) -> bool:
        self._ready()
        return super().__contains__(name)

    def in_order(self) -> list[Metric]:
        """Every metric in the order registered: the built-ins, then the others as they came."""
        self._ready()
        return list(self._items.values())


METRICS = MetricRegistry()


def load_entry_points() -> None:
    """Import the metrics of every installed package that declares them (entry-point group
    ``retain.metrics``, see retain.plugins). A plugin that fails to import is a one-line
    ConfigError naming it."""
    from retain.plugins import load_group

    load_group(ENTRY_POINT_GROUP)


def register_metric(name: str, *, label: str, higher_is_better: bool, percent: bool = True,
                    needs_baseline: bool = False, description: str) -> Callable[[MetricFn], MetricFn]:
    """Decorator: register ``fn(R, baseline) -> float | None`` as metric ``name`` (a lower-case
    identifier, which becomes a CSV column). ``fn`` must not modify its inputs; returning None
    leaves the metric out for that run. The function is returned unchanged."""
    if not name.isidentifier() or name != name.lower():
        raise ValueError(f"metric name {name!r} must be a lower-case identifier (it names a CSV column)")
    if not label.strip() or not description.strip():
        raise ValueError(f"metric {name!r} needs a label and a description")

    def decorator(fn: MetricFn) -> MetricFn:
        if not callable(fn):
            raise ValueError(f"metric {name!r}: {fn!r} is not callable")
        METRICS.register(name)(Metric(name, label, bool(higher_is_better), bool(percent), bool(needs_baseline),
                                      " ".join(description.split()), fn))
        return fn

    return decorator


def compute_metrics(R: matrix.Matrix, baseline: Sequence[float] | None = None, *,
                    trains_once: bool = False) -> dict[str, float]:
    """Name -> value of every registered metric that applies to the run with matrix ``R``, in
    registration order. A train-once run (joint) gets ``avg_acc`` alone, as the training loop
    records it: its rows before the last are of an untrained model."""
    if trains_once:
        return {"avg_acc": matrix.average_accuracy(R)}
    out: dict[str, float] = {}
    for m in METRICS.in_order():
        if m.needs_baseline and baseline is None:
            continue
        value = m.fn(R, baseline)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"metric {m.name!r} returned {type(value).__name__}, not a number or None")
        out[m.name] = float(value)
    return out


def trained_once(run: dict[str, Any]) -> bool:
    """Whether a stored run trained once on every task (joint). The loop records that decision
    as the run's metric names (``avg_acc`` alone), so that is read first: an old joint run trained
    task by task keeps its forgetting. Without them, the strategy class says (False when unknown)."""
    recorded = run.get("metrics")
    if isinstance(recorded, dict) and recorded:
        return set(recorded) == {"avg_acc"}
    from retain.strategies import STRATEGIES

    name = run.get("strategy") or ""
    return bool(getattr(STRATEGIES.get(name), "trains_once", False)) if name in STRATEGIES else False


def metrics_of(run: dict[str, Any]) -> dict[str, float]:
    """Every registered metric of one stored run (a store or run record), computed from its
    accuracy matrix and baseline row; empty for a run without a matrix (a failed one)."""
    R = run.get("acc_matrix")
    if not R:
        return {}
    return compute_metrics(R, run.get("baseline"), trains_once=trained_once(run))


# ---- the built-ins: the metrics retain.metrics.matrix.summarize records at run time ----------
BUILTIN = ("avg_acc", "forgetting", "bwt", "fwt", "learning_acc")


@register_metric("avg_acc", label="avg acc", higher_is_better=True,
                 description="mean accuracy over all tasks after the last one")
def _avg_acc(R, baseline):
    return matrix.average_accuracy(R)


@register_metric("forgetting", label="forgetting", higher_is_better=False,
                 description="mean drop of each earlier task from its best accuracy before the last task to "
                             "its final one (Chaudhry et al. 2018; negative when tasks improved)")
def _forgetting(R, baseline):
    return matrix.forgetting(R)


@register_metric("bwt", label="BWT", higher_is_better=True,
                 description="backward transfer: mean final accuracy minus accuracy just after training, over "
                             "the earlier tasks (Lopez-Paz & Ranzato 2017)")
def _bwt(R, baseline):
    return matrix.backward_transfer(R)


@register_metric("fwt", label="FWT", higher_is_better=True, needs_baseline=True,
                 description="forward transfer: accuracy on each task before training it, minus the untrained "
                             "model's (Lopez-Paz & Ranzato 2017)")
def _fwt(R, baseline):
    return matrix.forward_transfer(R, baseline)


@register_metric("learning_acc", label="learning acc", higher_is_better=True,
                 description="mean accuracy on each task right after training it")
def _learning_acc(R, baseline):
    return matrix.learning_accuracy(R)


__all__ = ["BUILTIN", "METRICS", "Metric", "compute_metrics", "load_entry_points", "metrics_of",
           "register_metric", "trained_once"]
