"""Averaged Gradient Episodic Memory (A-GEM), with a reservoir memory.

Chaudhry, Ranzato, Rohrbach, Elhoseiny, "Efficient Lifelong Learning with A-GEM", ICLR 2019
(arXiv:1812.00420). The gradient g of the current batch is compared with a reference gradient
g_ref of a batch drawn from memory; when they conflict (g . g_ref < 0) g is projected to
g - (g . g_ref / g_ref . g_ref) g_ref, so the step does not increase the memory loss to first order.

The paper fills its memory per task at task boundaries; here memory is a reservoir filled on
every step (the authors of the DER paper call this variant A-GEM-R), so no task boundaries are
needed.

Regularisers added by name (``agem+ewc``) join the current batch's loss before its gradient is
taken, so the projection keeps the regularised step from increasing the memory loss too; SI's
path integral counts the gradient of the current batch's cross-entropy alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from retain import distributed
from retain.strategies.base import register_strategy
from retain.strategies.er import ReplayStrategy


def project(grad: Tensor, ref: Tensor) -> tuple[Tensor, Tensor]:
    """A-GEM's projection of ``grad`` against ``ref``; returns (new gradient, dot product)."""
    dot = grad @ ref
    if dot < 0:
        return grad - (dot / (ref @ ref).clamp_min(1e-12)) * ref, dot
    return grad, dot


@register_strategy("agem")
class AGEM(ReplayStrategy):
    """Project the current gradient when it conflicts with the memory's reference gradient."""

    cost = "a reservoir buffer; one extra gradient on a buffer batch and a projection per step"
    amp_modes = ("bf16",)
    amp_note = "A-GEM projects raw float32 gradients; fp16 would need them unscaled first (use bf16)"
    data_parallel = True  # the current gradient (backward) and the reference gradient are rank averages

    accepts_regularisers = True

    def _params(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def _flat_grad(self, loss: Tensor) -> Tensor:
        params = self._params()
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                          for g, p in zip(grads, params)])

    def observe(self, x: Tensor, y: Tensor, task: int, *, plain: Tensor | None = None) -> dict[str, Tensor]:
        with self.autocast():  # forward passes only: gradients of float32 weights are float32
            logits = self.model(x)
            loss = F.cross_entropy(logits, y)
        self.backward(loss, self.extra_loss(x, y, logits))  # bf16 only: no scaler, raw gradients
        grad = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                          for p in self._params()])
        logged = {}
        if len(self.buffer):
            replay = self.replay(self.config.replay_batch_size)
            with self.autocast():
                ref_loss = F.cross_entropy(self.model(replay.x), replay.y)
            # Data-parallel: each rank drew its share of the memory batch; the mean over the ranks is
            # the reference gradient of the whole draw, so every rank projects the same way. (Every
            # rank's buffer fills from the first step on, so all ranks take this branch together.)
            ref = distributed.mean(self._flat_grad(ref_loss))
            grad, dot = project(grad, ref)
            logged["projected"] = (dot < 0).float()
        self._apply(grad)
        self.remember(x, y, task, plain=plain)
        return {"loss": loss.detach(), **logged}

    def _apply(self, grad: Tensor) -> None:
        offset = 0
        for p in self._params():
            n = p.numel()
            p.grad = grad[offset: offset + n].view_as(p)
            offset += n
        self.optimizer.step()
        self.after_update()
