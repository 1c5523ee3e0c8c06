"""Synaptic Intelligence.

Zenke, Poole & Ganguli, "Continual Learning Through Synaptic Intelligence", ICML 2017,
https://arxiv.org/abs/1703.04200 (facts checked against the authors' ``pathint`` code).

Every step adds -g * delta_theta to a running path integral omega, with g the gradient of the
*unregularised* loss (the penalty's own pull must not count as importance). At task end
Omega <- max(0, Omega + omega / ((theta_end - theta_start)^2 + xi)) and omega restarts at zero;
the penalty is c * sum Omega (theta - theta*)^2 with theta* the parameters at that task end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from retain.benchmarks.base import Experience
from retain.strategies.base import Strategy, register_strategy
from retain.strategies.config import StrategyConfig, hp
from retain.strategies.penalties import detached_copy, quadratic_penalty, trainable


@dataclass
class SIConfig(StrategyConfig):
    si_c: float = hp(0.1, "SI: penalty strength c in c sum Omega (theta - theta*)^2", low=0.0)
    si_xi: float = hp(0.1, "SI: damping xi in omega / (delta^2 + xi) (0.1 P-MNIST, 1e-3 split)", low=0.0,
                      low_open=True)


@register_strategy("si")
class SI(Strategy):
    """Cross-entropy plus a quadratic penalty weighted by each parameter's path-integral importance."""

    cost = "3 parameter-sized tensors, updated at every step"
    amp_modes = ("bf16",)
    amp_note = "SI's path integral reads raw gradients; fp16 would need them unscaled first (use bf16)"

    family = "regularisation"

    Config = SIConfig
    needs_boundaries = True  # importance is consolidated and the anchor moves at task end

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        params = trainable(self.model)
        self.omega = {n: torch.zeros_like(p) for n, p in params.items()}  # this task's path integral
        self.importance = {n: torch.zeros_like(p) for n, p in params.items()}  # Omega
        self.anchor = detached_copy(params)  # theta*: start of the current task

    def begin_task(self, experience: Experience) -> None:
        super().begin_task(experience)
        # The path length is measured from where this task starts (equal to the last anchor
        # unless someone changed the weights between tasks).
        self.start = detached_copy(trainable(self.model))

    def observe(self, x: Tensor, y: Tensor, task: int, *, plain: Tensor | None = None) -> dict[str, Tensor]:
        params = trainable(self.model)
        with self.autocast():  # the forward only: gradients and the path integral stay float32
            ce = F.cross_entropy(self.model(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        ce.backward()
        grads = {n: p.grad.detach().clone() for n, p in params.items() if p.grad is not None}
        pen = quadratic_penalty(params, self.importance, self.anchor)
        if self.task > 0:  # add the penalty's gradient after the unregularised one was recorded
            pen.mul(self.config.si_c).backward()
        before = detached_copy(params)
        self.optimizer.step()
        with torch.no_grad():
            for n, g in grads.items():
                self.omega[n] -= g * (params[n] - before[n])
        return {"loss": ce.detach(), "penalty": (self.config.si_c * pen).detach()}

    def end_task(self, experience: Experience) -> None:
        start = getattr(self, "start", self.anchor)
        with torch.no_grad():
            for n, p in trainable(self.model).items():
                delta = p.detach() - start[n]
                self.importance[n] = (self.importance[n] + self.omega[n] / (delta.pow(2) + self.config.si_xi)
                                      ).clamp_(min=0.0)
                self.omega[n].zero_()
        self.anchor = detached_copy(trainable(self.model))

    def stats(self) -> dict[str, Any]:
        flat = torch.cat([t.flatten() for t in self.importance.values()])
        return {"si_importance_mean": float(flat.mean()), "si_importance_max": float(flat.max())}

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"omega": self.omega, "importance": self.importance, "anchor": self.anchor,
                                       "start": getattr(self, "start", self.anchor)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.omega, self.importance = state["omega"], state["importance"]
        self.anchor, self.start = state["anchor"], state["start"]
