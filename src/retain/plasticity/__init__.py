"""Plasticity fixes any strategy can enable, applied by the run loop around the strategy's own
hooks: ReDo (redo.py), shrink-and-perturb (shrink_perturb.py) and Weight Space Consolidation
(wsc.py). Configured by ``RunConfig.plasticity`` (a dict of :class:`PlasticityConfig` fields;
CLI flags ``--redo``, ``--shrink-perturb``, ``--wsc``)."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any

import torch

from retain.errors import ConfigError


def _f(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass
class PlasticityConfig:
    """Which fixes are on and their settings (every field optional in the dict)."""

    redo: bool = _f(False, "ReDo: reset tau-dormant units at each task start")
    redo_tau: float = _f(0.1, "ReDo dormant threshold on the normalised score")
    redo_every: int = _f(0, "ReDo also every N optimiser steps (0: task starts only)")
    shrink_perturb: bool = _f(False, "shrink-and-perturb the weights")
    sp_when: str = _f("task", "'task' (at each task start after the first) or 'step' (after every step)")
    sp_shrink: float | None = _f(None, "shrink factor lambda (default 0.8 per task, 1 - 1e-4 per step)")
    sp_noise: float | None = _f(None, "noise, relative to the init std (default 0.01 per task, 1e-4 per step)")
    wsc: bool = _f(False, "Weight Space Consolidation: rank-based reset + weight averaging")
    wsc_warmup: float = _f(0.1, "fraction of a task's steps before the reset")
    wsc_keep: float = _f(0.2, "fraction of each tensor kept (top by |m|*v score)")
    wsc_reset: float = _f(0.5, "how far the rest moves back toward the previous task's weights")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> PlasticityConfig:
        d = dict(d or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"plasticity: unknown setting(s) {unknown}; known: {sorted(known)}")
        from retain.strategies.config import check_type, type_name

        types = cls.field_types()
        for key, value in d.items():  # wrong types refused, not coerced (true is not 1, "0.1" not 0.1)
            if value is None and key in ("sp_shrink", "sp_noise"):
                continue
            try:
                d[key] = check_type(types[key], value)
            except ValueError:
                raise ConfigError(f"plasticity: {key.replace('_', '-')} must be {type_name(types[key])}, "
                                  f"got {value!r}") from None
        cfg = cls(**d)
        cfg.validate()
        return cfg

    @classmethod
    def field_types(cls) -> dict[str, type]:
        """Each field's type, ``float | None`` read as float."""
        return _field_types(cls)

    def validate(self) -> None:
        import math

        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"plasticity: {f.name.replace('_', '-')} must be a finite number, got {value}")
        checks = [("redo_tau", 0 <= self.redo_tau <= 1), ("redo_every", int(self.redo_every) >= 0),
                  ("sp_when", self.sp_when in ("task", "step")),
                  ("sp_shrink", self.sp_shrink is None or 0 < self.sp_shrink <= 1),
                  ("sp_noise", self.sp_noise is None or self.sp_noise >= 0),
                  ("wsc_warmup", 0 < self.wsc_warmup < 1), ("wsc_keep", 0 <= self.wsc_keep <= 1),
                  ("wsc_reset", 0 <= self.wsc_reset <= 1)]
        for name, ok in checks:
            if not ok:
                raise ConfigError(f"plasticity: {name.replace('_', '-')} = {getattr(self, name)!r} is out of range")

    @property
    def enabled(self) -> bool:
        return self.redo or self.shrink_perturb or self.wsc


@functools.cache
def _field_types(cls: type) -> dict[str, type]:
    import typing

    hints = typing.get_type_hints(cls)
    return {f.name: next(a for a in typing.get_args(hints[f.name]) or (hints[f.name],) if a is not type(None))
            for f in dataclasses.fields(cls)}


class Plasticity:
    """Drives the enabled fixes; the loop calls begin_task / after_step / end_task."""

    def __init__(self, cfg: PlasticityConfig, strategy: Any, seed: int = 0):
        from retain.plasticity.shrink_perturb import init_scales
        from retain.plasticity.wsc import WeightSpaceConsolidation

        self.cfg, self.strategy, self.steps, self.reset_units = cfg, strategy, 0, 0
        self.gen = torch.Generator().manual_seed(seed + 7919)
        per_step = cfg.sp_when == "step"
        self.shrink = cfg.sp_shrink if cfg.sp_shrink is not None else (1 - 1e-4 if per_step else 0.8)
        self.noise = cfg.sp_noise if cfg.sp_noise is not None else (1e-4 if per_step else 0.01)
        self.scales = init_scales(strategy.model, seed) if cfg.shrink_perturb else {}
        self.wsc = WeightSpaceConsolidation(strategy.model, warmup=cfg.wsc_warmup, keep=cfg.wsc_keep,
                                            reset=cfg.wsc_reset) if cfg.wsc else None

    def begin_task(self, task: int, experience: Any, steps: int) -> None:
        from retain.plasticity.redo import redo_reset
        from retain.plasticity.shrink_perturb import shrink_perturb

        self.batch = experience.prepare(experience.train_x[:256], train=True)
        if self.cfg.redo and task > 0:
            self.reset_units += redo_reset(self.strategy.model, self.batch, tau=self.cfg.redo_tau,
                                           optimizer=self.strategy.optimizer)
        if self.cfg.shrink_perturb and self.cfg.sp_when == "task" and task > 0:
            shrink_perturb(self.strategy.model, self.shrink, self.noise, self.scales, self.gen)
        if self.wsc is not None:
            self.wsc.begin_task(task, steps)

    def after_step(self, x: torch.Tensor) -> None:
        from retain.plasticity.redo import redo_reset
        from retain.plasticity.shrink_perturb import shrink_perturb

        self.steps += 1
        if self.cfg.shrink_perturb and self.cfg.sp_when == "step":
            shrink_perturb(self.strategy.model, self.shrink, self.noise, self.scales, self.gen)
        if self.cfg.redo and self.cfg.redo_every and self.steps % self.cfg.redo_every == 0:
            self.reset_units += redo_reset(self.strategy.model, x, tau=self.cfg.redo_tau,
                                           optimizer=self.strategy.optimizer)
        if self.wsc is not None:
            self.wsc.after_step()

    def end_task(self, task: int) -> None:
        if self.wsc is not None:
            self.wsc.end_task()

    def state_dict(self) -> dict[str, Any]:
        """What carries over from one task to the next, for checkpoints (retain.training.checkpoint); the
        per-task state (WSC's moments and average) is rebuilt by ``begin_task``."""
        wsc = {"prev": self.wsc.prev, "resets": self.wsc.resets} if self.wsc is not None else None
        return {"steps": self.steps, "reset_units": self.reset_units, "gen": self.gen.get_state(), "wsc": wsc}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps, self.reset_units = state["steps"], state["reset_units"]
        self.gen.set_state(state["gen"])
        if self.wsc is not None:
            self.wsc.prev, self.wsc.resets = state["wsc"]["prev"], state["wsc"]["resets"]


def make_plasticity(options: PlasticityConfig | dict[str, Any] | None, strategy: Any,
                    seed: int = 0) -> Plasticity | None:
    """The fixes driver for a run, or None when no fix is enabled (the loop then does nothing).
    A dict is checked first; a PlasticityConfig is taken as resolved."""
    cfg = options if isinstance(options, PlasticityConfig) else PlasticityConfig.from_dict(options)
    return Plasticity(cfg, strategy, seed) if cfg.enabled else None


__all__ = ["Plasticity", "PlasticityConfig", "make_plasticity"]
