"""The built-in strategies' batched implementations, by the exact sequential class they mirror."""

from __future__ import annotations

import torch
from torch import Tensor

from retain.ensemble.base import EnsembleStrategy
from retain.ensemble.fused import fusable, plain_sgd, sgd_cross_entropy_step
from retain.ensemble.regularised import EnsembleEWC, EnsembleLwF, EnsembleSI
from retain.ensemble.replay import EnsembleAGEM, EnsembleDER, EnsembleDERpp, EnsembleER
from retain.strategies.naive import Naive


class EnsembleNaive(EnsembleStrategy):
    """:class:`retain.strategies.naive.Naive` for N members. With plain SGD on the MLP each step
    is :func:`retain.ensemble.fused.sgd_cross_entropy_step` (the same update, without autograd)."""

    strategy = Naive

    def __init__(self, members, make_optimizer):
        super().__init__(members, make_optimizer)
        self.fused = fusable(self.model) and plain_sgd(self.optimizer)

    def observe(self, x: Tensor, y: Tensor, task: int) -> dict[str, Tensor]:
        if not self.fused:
            return super().observe(x, y, task)
        active = None
        if self.retired:
            active = torch.ones(self.size)
            active[sorted(self.retired)] = 0.0
        loss = sgd_cross_entropy_step(self.model, x, y, self.optimizer.param_groups[0]["lr"], active)
        self.after_update()
        return {"loss": loss}


#: Sequential strategy class -> its batched implementation.
BATCHED: dict[type, type[EnsembleStrategy]] = {
    impl.strategy: impl for impl in (EnsembleNaive, EnsembleER, EnsembleDER, EnsembleDERpp, EnsembleAGEM, EnsembleEWC,
                                     EnsembleSI, EnsembleLwF)
}
