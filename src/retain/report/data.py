"""Which runs a report covers and how they group: one group per benchmark and resolved config
(all seeds and task orders of one setting together), labelled by what differs between groups."""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from retain.metrics.matrix import average_accuracy_curve, confidence_interval
from retain.metrics.registry import metrics_of
from retain.store.record import RunRecord

#: Settings a strategy must share with naive for naive to be its reference.
_SAME_SETUP = ("tasks", "scenario", "backbone", "hidden", "epochs", "task_free")


@dataclass
class Group:
    """The finished runs of one setting (all its seeds and orders) on one benchmark."""

    benchmark: str
    strategy: str
    config: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)
    label: str = ""
    _metrics: list[dict[str, float]] = field(default_factory=list, repr=False, compare=False)

    def metrics(self) -> list[dict[str, float]]:
        """Each run's registered metrics, computed from its stored accuracy matrix and baseline
        (once: the group's runs are complete when a report asks)."""
        if len(self._metrics) != len(self.runs):
            self._metrics = [metrics_of(r) for r in self.runs]
        return self._metrics

    def values(self, name: str) -> list[float]:
        """One value per run: a metric name, or wall_seconds / train_seconds / peak_mem_mb /
        trainable_params."""
        if name in ("wall_seconds", "train_seconds", "peak_mem_mb", "trainable_params"):
            return [float(r[name]) for r in self.runs if r.get(name) is not None]
        if name == METHOD_STATE:  # read from the stored probes (attach_method_state); absent in older runs
            return [float(r.extra[name]) for r in self.runs if name in (r.get("extra") or {})]
        return [m[name] for m in self.metrics() if name in m]

    def ci(self, name: str) -> tuple[float, float] | None:
        v = self.values(name)
        return confidence_interval(v) if v else None

    def has(self, name: str) -> bool:
        """Whether any run has metric ``name`` (a joint run has only ``avg_acc``)."""
        return bool(self.values(name))

    def matrix_runs(self) -> list[dict[str, Any]]:
        """Runs with a square accuracy matrix of the group's usual size: the ones trained task by task."""
        shapes = [_shape(r.acc_matrix) for r in self.runs]
        square = [s for s in shapes if s[0] == s[1] > 0]
        if not square or not self.has("forgetting"):  # a final-only method: its matrix has no history
            return []
        size = max(set(square), key=square.count)
        return [r for r, s in zip(self.runs, shapes) if s == size]

    def mean_matrix(self) -> np.ndarray | None:
        runs = self.matrix_runs()
        return np.mean([np.array(r.acc_matrix) for r in runs], axis=0) if runs else None

    def curves(self) -> np.ndarray | None:
        """Average accuracy after each task, one row per run (None for a final-only method)."""
        runs = self.matrix_runs()
        return np.array([average_accuracy_curve(r.acc_matrix) for r in runs]) if runs else None

    def ensemble_sizes(self) -> list[int]:
        """The ensemble sizes the group's runs were trained in (``[1]``: each on its own)."""
        return sorted({ensemble_size(r) for r in self.runs})

    def num_tasks(self) -> list[int]:
        """The number of tasks of each run: its matrix's width, or the configured count."""
        return sorted({len(r.acc_matrix[-1]) if r.acc_matrix else int(r.config.get("tasks") or 0)
                       for r in self.runs})


#: What the method itself holds beyond the model (MiB, the largest after any task): the probe of
#: :func:`retain.diagnostics.probes.method_state_mb`.
METHOD_STATE = "method_state_mb"


def attach_method_state(store, runs: list[RunRecord]) -> None:
    """Copy each run's largest ``method_state_mb`` probe into its ``extra`` (in memory, for the
    report's memory figure); runs recorded before the probe existed get none."""
    for r in runs:
        if r.id is None or METHOD_STATE in (r.extra or {}):
            continue
        values = [v for _, v in store.probes(r.id).get(METHOD_STATE, [])]
        if values:
            r.extra = {**(r.extra or {}), METHOD_STATE: max(values)}


def ensemble_size(run: dict[str, Any]) -> int:
    """How many runs trained together with ``run`` as one vectorised ensemble (1: on its own). A
    member's times are its 1/N share of the ensemble's, so they have no spread of their own and
    compare only with runs trained the same way."""
    batched = (run.get("extra") or {}).get("batched") or {}
    return int(batched.get("members") or 1)


def _shape(R) -> tuple[int, int]:
    widths = {len(row) for row in R or []}
    return (len(R), widths.pop()) if len(widths) == 1 else (len(R or []), -1)


def select_runs(store, *, run_keys=None, study=None, benchmark=None, strategy=None) -> list[RunRecord]:
    """Finished runs matching every filter given (None: no filter)."""
    runs = store.runs(study=study, benchmark=benchmark, strategy=strategy)
    if run_keys is not None:
        keys = set(run_keys)
        runs = [r for r in runs if r.run_key in keys]
    return runs


def _signature(run: dict[str, Any]) -> str:
    cfg = {k: v for k, v in run.config.items() if k not in ("seed", "order")}
    return json.dumps(cfg, sort_keys=True, default=str)


def _flat(cfg: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in cfg.items() if k not in ("params", "seed", "order", "strategy", "benchmark")}
    out.update({k: v for k, v in (cfg.get("params") or {}).items()})
    return {k: json.dumps(v, default=str) if isinstance(v, (list, dict)) else v for k, v in out.items()}


def group_runs(runs: list[dict[str, Any]]) -> dict[str, list[Group]]:
    """Benchmark -> its groups (benchmarks in the order their first run was recorded; groups in
    :func:`retain.report.style.method_order`, the order of the terminal table too)."""
    groups: dict[str, Group] = {}
    for r in runs:
        sig = f"{r['benchmark']}|{_signature(r)}"
        if sig not in groups:
            groups[sig] = Group(r.benchmark, r.strategy, r.config)
        groups[sig].runs.append(r)
    by_bench: dict[str, list[Group]] = defaultdict(list)
    for g in groups.values():
        by_bench[g.benchmark].append(g)
    from retain.report.style import method_order

    for gs in by_bench.values():
        _label(gs)
        gs.sort(key=lambda g: method_order(g.strategy, g.label))
    return dict(by_bench)


def _label(groups: list[Group]) -> None:
    """``ewc (lambda_=100)``: the strategy plus the settings that differ among its groups."""
    by_strategy: dict[str, list[Group]] = defaultdict(list)
    for g in groups:
        by_strategy[g.strategy].append(g)
    for name, gs in by_strategy.items():
        flats = [_flat(g.config) for g in gs]
        varying = sorted(k for k in set().union(*flats) if len({str(f.get(k)) for f in flats}) > 1)
        for g, f in zip(gs, flats):
            g.label = name + (f" ({', '.join(f'{k}={f.get(k)}' for k in varying)})" if varying else "")


def reference(group: Group, groups: list[Group]) -> Group | None:
    """The naive group run in the same setup as ``group`` (None when there is none)."""
    same = [g for g in groups if g.strategy == "naive"
            and all(g.config.get(k) == group.config.get(k) for k in _SAME_SETUP)]
    exact = [g for g in same if g.config.get("lr") == group.config.get("lr")]
    return (exact or same or [None])[0]


#: Benchmarks whose data ships with retain or scikit-learn: building one to read its default
#: scenario costs a fraction of a second and reads no downloaded file.
_EMBEDDED = ("retain.benchmarks.synthetic", "retain.benchmarks.digits")


def scenario_of(run: dict[str, Any]) -> str:
    """The scenario the run was evaluated in: the configured one, the one recorded with the run,
    or the benchmark's default (declared in the registry, else read off an embedded benchmark)."""
    cfg = run.config
    known = cfg.get("scenario") or (run.get("extra") or {}).get("scenario")
    if known:
        return str(known)
    return _default_scenario(run.benchmark, cfg.get("tasks"), json.dumps(cfg.get("benchmark_options") or {},
                                                                              sort_keys=True))


@functools.cache
def _default_scenario(benchmark: str, tasks: int | None, options: str) -> str:
    unknown = f"{benchmark}'s default (not recorded)"
    try:
        from retain.benchmarks import BENCHMARKS, make_benchmark

        factory = BENCHMARKS.get(benchmark)
        declared = getattr(factory, "default_scenario", None)
        if declared:
            return str(declared)
        if factory.__module__ not in _EMBEDDED:
            return unknown  # building it would read its data files, possibly gigabytes
        return make_benchmark(benchmark, tasks=tasks, seed=0, scenario=None, **json.loads(options)).scenario
    except Exception:  # noqa: BLE001 - a report renders even for a benchmark no longer installed
        return unknown
