"""Which runs can train as one ensemble, and the grouping of a study's runs into ensembles.

A run is batched when its strategy has a batched implementation (a built-in listed in
:data:`BATCHED`, or a strategy class that declares its own in ``ensemble_strategy``), its
backbone has no batch statistics (:data:`BACKBONES`), and it asks for nothing the ensemble loop
does not do (mixed precision, an accelerator, blurred boundaries, per-step plasticity fixes,
checkpoints).
Runs that differ only in seed and task order form one ensemble.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from retain.config.run import RunSpec

#: Backbones that are stacked by default: no batch statistics, every parameter trained, and faster
#: as an ensemble. vit-tiny is sound too (LayerNorm's statistics are each sample's own; tested
#: through run_ensemble in tests/test_batched_seeds.py) but left out: not faster. 5 seeds of DER++
#: as one ensemble took 48.5 s against 37.7 s one by one in the 2-process pool (2 cores,
#: docs/results.md), torch running the CPU's fused attention member by member under vmap; with the
#: attention as explicit products in the ensemble (models.vit.Attention.batched_products) 34.5 s
#: against 34.6 s.
BACKBONES = ("mlp",)
#: Most members in one ensemble; a larger group is split (memory grows with the members).
MAX_MEMBERS = 32


def batched_class(strategy_cls: type) -> type | None:
    """The batched implementation of ``strategy_cls``: its own declared ``ensemble_strategy``
    (set on the class itself, never inherited: a subclass that changes ``observe`` would
    otherwise be batched as its parent), else a built-in's whose ``strategy`` is exactly it."""
    declared = vars(strategy_cls).get("ensemble_strategy")
    if declared is not None:
        return declared
    from retain.ensemble.registry import BATCHED

    return BATCHED.get(strategy_cls)


#: Why a strategy's runs go one by one whatever the settings: a fact of the method, not a note.
NO_IMPLEMENTATION = "has no batched implementation"


def unsupported(cfg: RunSpec, *, checkpoints: bool = False) -> str | None:
    """Why ``cfg`` cannot run in an ensemble (a short phrase), or None when it can."""
    impl = batched_class(cfg.strategy_class)
    if impl is None:
        return f"strategy {cfg.strategy} {NO_IMPLEMENTATION}"
    if cfg.backbone not in BACKBONES:
        return f"backbone {cfg.backbone} is not batched (only {', '.join(BACKBONES)})"
    if cfg.device != "cpu":  # run_ensemble places everything on the members' device; not yet run on one
        return f"device {cfg.device} (batched runs on an accelerator stay off until measured on one)"
    if cfg.amp:
        return "--amp"
    if getattr(cfg, "ddp", 1) > 1:
        return "--ddp (each run is already spread over processes)"
    if cfg.blur > 0:
        return "--blur"
    fixes = cfg.plasticity_config()
    if fixes.wsc or (fixes.redo and fixes.redo_every) or (fixes.shrink_perturb and fixes.sp_when == "step"):
        return "a per-step plasticity fix (only ReDo and shrink-and-perturb at task starts are batched)"
    if fixes.redo and cfg.optimizer != "sgd":
        return "ReDo with Adam (it resets optimiser moments of the member's own optimiser)"
    if checkpoints:
        return "--checkpoint-dir"
    return impl.unsupported(cfg.strategy_config())


@dataclass(frozen=True)
class Ensemble:
    """Runs trained together: the same configuration but for seed and task order. ``strategy``,
    ``seed`` and ``order`` describe the group for progress bars."""

    members: tuple[RunSpec, ...]

    @property
    def strategy(self) -> str:
        return self.members[0].strategy

    @property
    def seed(self) -> str:
        return _span(sorted({m.seed for m in self.members}))

    @property
    def order(self) -> str:
        return _span(sorted({m.order for m in self.members}))

    @property
    def device(self) -> str:
        return self.members[0].device

    @property
    def plugins(self) -> tuple:
        """The plugin sources the members use (the same for all: they share one configuration)."""
        return self.members[0].plugins


def _span(values: list[int]) -> str:
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}-{values[-1]}"
    return ",".join(map(str, values))


def _signature(cfg: RunSpec) -> str:
    same = {k: v for k, v in cfg.resolved.items() if k not in ("seed", "order")}
    return json.dumps([same, cfg.data_dir], sort_keys=True, default=str)


def plan(configs: Sequence[RunSpec], *, checkpoints: bool = False) -> tuple[list[RunSpec | Ensemble], list[str]]:
    """The jobs for ``configs``: groups of two or more runs that differ only in seed and order
    become :class:`Ensemble` s (in the order of their first run), the rest stay single runs.
    Also returns one note per reason some runs go one by one, for the reasons a setting gives
    (a strategy without a batched implementation, e.g. joint in the default study, is no news)."""
    groups: dict[str, list[RunSpec]] = {}
    jobs: list[RunSpec | Ensemble | str] = []
    reasons: dict[str, list[str]] = {}
    for cfg in configs:
        why = unsupported(cfg, checkpoints=checkpoints)
        if why is not None:
            jobs.append(cfg)
            reasons.setdefault(why, []).append(cfg.strategy)
            continue
        sig = _signature(cfg)
        if sig not in groups:
            groups[sig] = []
            jobs.append(sig)
        groups[sig].append(cfg)
    out: list[RunSpec | Ensemble] = []
    for job in jobs:
        if not isinstance(job, str):
            out.append(job)
            continue
        members = groups[job]
        if len(members) == 1:
            out.append(members[0])
            continue
        out += [Ensemble(tuple(members[i: i + MAX_MEMBERS])) for i in range(0, len(members), MAX_MEMBERS)]
    notes = [f"{len(names)} run(s) of {', '.join(sorted(set(names)))} train one by one, not batched: {why}"
             for why, names in reasons.items() if len(names) > 1 and not why.endswith(NO_IMPLEMENTATION)]
    return out, notes
