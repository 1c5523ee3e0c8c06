"""Synaptic Intelligence.

Zenke, Poole & Ganguli, "Continual Learning Through Synaptic Intelligence", ICML 2017,
https://arxiv.org/abs/1703.04200 (facts checked against the authors' ``pathint`` code).

Every step adds -g * delta_theta to a running path integral omega, with g the gradient of the
*unregularised* loss (the penalty's own pull must not count as importance). At task end
Omega <- max(0, Omega + omega / ((theta_end - theta_start)^2 + xi)) and omega restarts at zero;
the penalty is c * sum Omega (theta - theta*)^2 with theta* the parameters at that task end.
Added to another strategy (``er+si``), the unregularised loss is that strategy's own (ER's: the
current and the replayed samples); no regulariser's term counts as importance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from retain.benchmarks.base import Experience
from retain.strategies.base import register_strategy
from retain.strategies.config import StrategyConfig, hp
from retain.strategies.penalties import detached_copy, quadratic_penalty, trainable
from retain.strategies.regulariser import Regularised, Regulariser


@dataclass
class SIConfig(StrategyConfig):
    si_c: float = hp(0.1, "SI: penalty strength c in c sum Omega (theta - theta*)^2", low=0.0)
    si_xi: float = hp(0.1, "SI: damping xi in omega / (delta^2 + xi) (0.1 P-MNIST, 1e-3 split)", low=0.0,
                      low_open=True)


class SIPenalty(Regulariser):
    """c sum Omega (theta - theta*)^2, with the path integral omega accumulated around every
    optimiser step from the gradient of the unregularised loss (``tracks_updates``)."""

    data_parallel = True  # it reads the rank-averaged gradient and identical steps: the same everywhere

    tracks_updates = True

    def __init__(self, model, config: SIConfig):
        super().__init__(model, config)
        params = trainable(model)
        self.omega = {n: torch.zeros_like(p) for n, p in params.items()}  # this task's path integral
        self.importance = {n: torch.zeros_like(p) for n, p in params.items()}  # Omega
        self.anchor = detached_copy(params)  # theta*: start of the current task
        self._grads: dict[str, Tensor] = {}
        self._before: dict[str, Tensor] = {}

    def begin_task(self, experience: Experience) -> None:
        # The path length is measured from where this task starts (equal to the last anchor
        # unless someone changed the weights between tasks).
        self.start = detached_copy(trainable(self.model))

    def loss(self, x: Tensor, y: Tensor, logits: Tensor) -> Tensor:
        # Zero, with a zero gradient, until the first task ends (Omega = 0). Float32: parameters,
        # Omega and anchor all are, and the strategy asks for it outside autocast.
        return quadratic_penalty(trainable(self.model), self.importance, self.anchor).mul(self.config.si_c)

    def before_update(self) -> None:
        params = trainable(self.model)
        self._grads = {n: p.grad.detach().clone() for n, p in params.items() if p.grad is not None}
        self._before = detached_copy(params)

    def after_update(self) -> None:
        params = trainable(self.model)
        with torch.no_grad():
            for n, g in self._grads.items():
                self.omega[n] -= g * (params[n] - self._before[n])

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
        return {"omega": self.omega, "importance": self.importance, "anchor": self.anchor,
                "start": getattr(self, "start", self.anchor)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.omega, self.importance = self.on_model(state["omega"]), self.on_model(state["importance"])
        self.anchor, self.start = self.on_model(state["anchor"]), self.on_model(state["start"])


@register_strategy("si")
class SI(Regularised):
    """Cross-entropy plus a quadratic penalty weighted by each parameter's path-integral importance."""

    cost = "3 parameter-sized tensors, updated at every step"

    Config = SIConfig
    amp_modes = ("bf16",)
    amp_note = "SI's path integral reads raw gradients; fp16 would need them unscaled first (use bf16)"
    regulariser = SIPenalty
    needs_boundaries = True  # importance is consolidated and the anchor moves at task end
