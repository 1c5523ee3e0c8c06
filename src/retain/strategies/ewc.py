"""Elastic Weight Consolidation, and its online variant.

EWC: Kirkpatrick et al., "Overcoming catastrophic forgetting in neural networks", PNAS 2017,
https://arxiv.org/abs/1612.00796. Online EWC: Schwarz et al., "Progress & Compress", ICML 2018,
https://arxiv.org/abs/1805.06370 (one Fisher F <- gamma F + F_new and one anchor, so memory does
not grow with the number of tasks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from retain.benchmarks.base import Experience
from retain.strategies.base import register_strategy
from retain.strategies.config import StrategyConfig, hp
from retain.strategies.penalties import (
    FISHER_KINDS,
    detached_copy,
    fisher_diagonal,
    quadratic_penalty,
    sample_inputs,
    trainable,
)
from retain.strategies.regulariser import Regularised, Regulariser


@dataclass
class EWCConfig(StrategyConfig):
    # 1: with plain SGD at lr ~0.1, lambda >= 100 diverged on P-MNIST and permuted digits (measured; see
    # docs/results-regularisation.md), since the step on the penalty grows with lr * lambda * max F.
    ewc_lambda: float = hp(1.0, "EWC: penalty strength lambda in (lambda/2) sum F (theta - theta*)^2", low=0.0)
    online: bool = hp(False, "EWC: online EWC (Schwarz 2018): one running Fisher and one anchor")
    gamma: float = hp(1.0, "EWC: decay of the running Fisher in online EWC (F <- gamma F + F_new)",
                      low=0.0, high=1.0)
    fisher: str = hp("exact", "EWC: Fisher estimate", choices=FISHER_KINDS)
    fisher_samples: int = hp(512, "EWC: training samples of the finished task used for the Fisher", low=1)


def consolidate(fishers: list[dict[str, Tensor]], anchors: list[dict[str, Tensor]], fisher: dict[str, Tensor],
                anchor: dict[str, Tensor], cfg: EWCConfig) -> tuple[list, list]:
    """The (Fisher, anchor) pairs after a task ends: one more pair, or in online mode the one pair
    gamma * F_old + F_new anchored at the latest weights."""
    if cfg.online and fishers:
        return [{n: cfg.gamma * fishers[0][n] + f for n, f in fisher.items()}], [anchor]
    return [*fishers, fisher], [*anchors, anchor]


class EWCPenalty(Regulariser):
    """(lambda/2) sum_k sum_i F_k,i (theta_i - theta*_k,i)^2 over the (Fisher, anchor) pairs taken
    at each task's end: one pair per task, or exactly one in online mode."""

    data_parallel = True  # the Fisher is summed over the ranks' shards of its samples

    def __init__(self, model, config: EWCConfig):
        super().__init__(model, config)
        self.fishers: list[dict[str, Tensor]] = []
        self.anchors: list[dict[str, Tensor]] = []
        self._gen = torch.Generator().manual_seed(0)

    def penalty(self) -> Tensor:
        params = trainable(self.model)
        terms = [quadratic_penalty(params, f, a) for f, a in zip(self.fishers, self.anchors)]
        return 0.5 * self.config.ewc_lambda * torch.stack(terms).sum() if terms else self.zero()

    def loss(self, x: Tensor, y: Tensor, logits: Tensor) -> Tensor:
        return self.penalty()  # float32: parameters, Fisher and anchor all are (outside autocast)

    def end_task(self, experience: Experience) -> None:
        cfg = self.config
        x, y = sample_inputs(experience, cfg.fisher_samples, self._gen)
        with self.float32():  # per-sample squared gradients would underflow in reduced precision
            fisher = fisher_diagonal(self.model, x, y, kind=cfg.fisher, generator=self._gen)
        self.fishers, self.anchors = consolidate(self.fishers, self.anchors, fisher,
                                                 detached_copy(trainable(self.model)), cfg)

    def stats(self) -> dict[str, Any]:
        numel = sum(t.numel() for d in self.fishers + self.anchors for t in d.values())
        mean_f = [float(torch.cat([t.flatten() for t in f.values()]).mean()) for f in self.fishers[-1:]]
        return {"ewc_stored_floats": numel, "ewc_fisher_mean": mean_f[0] if mean_f else 0.0}

    def state_dict(self) -> dict[str, Any]:
        return {"fishers": self.fishers, "anchors": self.anchors, "generator": self._gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.fishers = [self.on_model(f) for f in state["fishers"]]
        self.anchors = [self.on_model(a) for a in state["anchors"]]
        self._gen.set_state(state["generator"])


@register_strategy("ewc")
class EWC(Regularised):
    """Cross-entropy plus a Fisher-weighted quadratic pull towards earlier tasks' solutions.

    The diagonal Fisher information is computed at the end of each task (``online``: one running
    Fisher and one anchor)."""

    cost = ("stores a parameter copy and a diagonal Fisher per task (online: one of each); one extra pass over "
            "the data at each task's end")

    Config = EWCConfig
    amp_modes = ("bf16", "fp16")  # the Fisher and the penalty are float32, outside autocast
    regulariser = EWCPenalty
    needs_boundaries = True  # the Fisher and the anchor are taken at task end
