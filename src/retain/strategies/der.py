"""Dark Experience Replay (DER) and, with ``beta > 0``, DER++.

Buzzega, Boschini, Porrello, Abati, Calderara, "Dark Experience for General Continual Learning:
a Strong, Simple Baseline", NeurIPS 2020 (arXiv:2004.07211).

DER stores each sample with the logits the network gave it when it was inserted (never
refreshed) and adds ``alpha * MSE(f(x'), z')`` on a buffer draw. DER++ adds
``beta * CE(f(x''), y'')`` on a second, independent draw. The buffer is a reservoir, so no task
boundaries are needed.

On augmented benchmarks the buffer keeps the non-augmented inputs and replayed ones are augmented
when drawn (see :mod:`retain.strategies.er`); the stored logits are those of the augmented input
the network saw at insertion, as in the paper and Mammoth.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from retain.strategies.base import register_strategy
from retain.strategies.config import hp
from retain.strategies.er import ReplayConfig, ReplayStrategy


@dataclass
class DERConfig(ReplayConfig):
    alpha: float = hp(1.0, "weight of the logit-matching (MSE) term on replayed samples", low=0.0)


@register_strategy("der")
class DER(ReplayStrategy):
    """CE(current) + alpha * MSE(logits on buffer inputs, stored logits); DER++ adds beta * CE(buffer).

    DER has no ``beta``: a shared ``--beta`` flag must never turn DER into DER++ (``derpp``)."""

    description = ("Dark experience replay: replayed samples' logits are pulled towards the logits stored with "
                   "them (MSE)")
    cost = "a buffer of samples with their logits; one extra forward on a buffer batch per step"

    Config = DERConfig
    amp_modes = ("bf16", "fp16")
    data_parallel = True  # stored logits are per sample, so they stay in the rank's own buffer
    accepts_regularisers = True

    def observe(self, x: Tensor, y: Tensor, task: int, *, plain: Tensor | None = None) -> dict[str, Tensor]:
        with self.autocast():
            loss, outputs, logged = self._losses(x, y)
        self.step(loss, self.extra_loss(x, y, outputs))
        # Logits are stored in float32 whatever the precision of the forward pass.
        self.remember(x, y, task, plain=plain, logits=outputs.detach().float())
        return {"loss": loss.detach(), **logged}

    def _losses(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        cfg = self.config
        outputs = self.model(x)
        loss = F.cross_entropy(outputs, y)
        logged = {}
        if len(self.buffer):
            # Separate forward passes, as in the authors' code: with batch-norm backbones a joint
            # forward would mix statistics of current and replayed samples.
            first = self.replay(cfg.replay_batch_size)
            distill = F.mse_loss(self.model(first.x), first.logits)
            loss = loss + cfg.alpha * distill
            logged["distill"] = distill.detach()
            beta = getattr(cfg, "beta", 0.0)  # DER++ only (DERppConfig)
            if beta > 0:
                second = self.replay(cfg.replay_batch_size)
                replay_ce = F.cross_entropy(self.model(second.x), second.y)
                loss = loss + beta * replay_ce
                logged["replay_ce"] = replay_ce.detach()
        return loss, outputs, logged
