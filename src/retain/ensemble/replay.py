"""Batched experience replay and dark experience replay (DER, DER++) over stacked reservoirs.

Each mirrors its sequential strategy's ``observe`` draw for draw (the buffer's generator is
consumed in the same order: ER samples then inserts; DER samples its MSE batch, then DER++ its
CE batch, then inserts). Where the sequential strategy runs separate forward passes (DER), the
batched one runs one pass over the concatenated rows: the backbones batched here have no batch
statistics, so every row's output is the same function of that row (float rounding aside).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from retain.ensemble import manual
from retain.ensemble.base import EnsembleStrategy, member_cross_entropy, member_mse
from retain.ensemble.buffer import StackedReservoir
from retain.strategies.agem import AGEM
from retain.strategies.der import DER
from retain.strategies.derpp import DERpp
from retain.strategies.er import ER


class EnsembleReplay(EnsembleStrategy):
    """Owns the stacked reservoir built from the members' own buffers."""

    def __init__(self, members, make_optimizer):
        super().__init__(members, make_optimizer)
        self.buffer = StackedReservoir([m.buffer for m in members])

    @classmethod
    def unsupported(cls, config: Any) -> str | None:
        if config.buffer_kind != "reservoir":
            return f"buffer-kind {config.buffer_kind} (only the reservoir buffer is batched)"
        return None

    def sync(self) -> None:
        super().sync()
        self.buffer.sync()


class EnsembleER(EnsembleReplay):
    """:class:`retain.strategies.er.ER` for N members."""

    strategy = ER

    def observe(self, x: Tensor, y: Tensor, task: int) -> dict[str, Tensor]:
        inputs, labels = x, y
        if len(self.buffer):
            k = self.buffer.draw_size(self.config.replay_batch_size)
            inputs = x.new_empty((self.size, y.shape[1] + k, *x.shape[2:]))
            inputs[:, : y.shape[1]] = x
            _, by, _, _ = self.buffer.sample(self.config.replay_batch_size, out=inputs[:, y.shape[1]:])
            labels = torch.cat([y, by], 1)
        lr = self.manual_lr()
        if lr is None:
            loss = member_cross_entropy(self.model(inputs), labels)
            self.step(loss)
        else:  # the hand-written backward (retain.ensemble.manual)
            outputs, kept = manual.forward(self.model, inputs)
            grad = torch.empty_like(outputs)
            loss = manual.cross_entropy(outputs, labels, 1.0, grad)
            self.manual_step(kept, grad, lr)
        self.buffer.add(x, y, task)
        return {"loss": loss.detach()}


class EnsembleDER(EnsembleReplay):
    """:class:`retain.strategies.der.DER` (and DER++ with ``beta > 0``) for N members."""

    strategy = DER

    def observe(self, x: Tensor, y: Tensor, task: int) -> dict[str, Tensor]:
        cfg, b = self.config, y.shape[1]
        beta = getattr(cfg, "beta", 0.0)
        logged, inputs = {}, x
        if len(self.buffer):  # one batch [current; MSE draw; CE draw], the draws written in place
            k = self.buffer.draw_size(cfg.replay_batch_size)
            inputs = x.new_empty((self.size, b + k * (2 if beta > 0 else 1), *x.shape[2:]))
            inputs[:, :b] = x
            first = self.buffer.sample(cfg.replay_batch_size, out=inputs[:, b: b + k])
            if beta > 0:
                second = self.buffer.sample(cfg.replay_batch_size, out=inputs[:, b + k:])
        lr = self.manual_lr()
        # the autograd path, or the hand-written backward (retain.ensemble.manual): each term's
        # gradient at its block of outputs is written into ``grad``, scaled by the term's weight
        if lr is None:
            outputs, kept, grad = self.model(inputs), [], None
        else:
            outputs, kept = manual.forward(self.model, inputs)
            grad = torch.empty_like(outputs)
        block = lambda i, j: None if grad is None else grad[:, i:j]  # noqa: E731
        ce = member_cross_entropy(outputs[:, :b], y) if lr is None else manual.cross_entropy(
            outputs[:, :b], y, 1.0, block(0, b))
        loss = ce
        if inputs is not x:
            distill = (member_mse(outputs[:, b: b + k], first[2]) if lr is None
                       else manual.mse(outputs[:, b: b + k], first[2], cfg.alpha, block(b, b + k)))
            loss = loss + cfg.alpha * distill
            logged["distill"] = distill.detach()
            if beta > 0:
                replay_ce = (member_cross_entropy(outputs[:, b + k:], second[1]) if lr is None
                             else manual.cross_entropy(outputs[:, b + k:], second[1], beta, block(b + k, None)))
                loss = loss + beta * replay_ce
                logged["replay_ce"] = replay_ce.detach()
        if lr is None:
            self.step(loss)
        else:
            self.manual_step(kept, grad, lr)
        self.buffer.add(x, y, task, logits=outputs[:, :b].detach())
        return {"loss": loss.detach(), **logged}


class EnsembleDERpp(EnsembleDER):
    """:class:`retain.strategies.derpp.DERpp` for N members (DER with its ``beta``)."""

    strategy = DERpp


class EnsembleAGEM(EnsembleReplay):
    """:class:`retain.strategies.agem.AGEM` for N members: each member's gradient is projected
    against its own reference gradient (per-member dot products over all its parameters)."""

    strategy = AGEM

    def _flat(self, grads: list[Tensor]) -> Tensor:
        return torch.cat([g.reshape(self.size, -1) for g in grads], 1)

    def observe(self, x: Tensor, y: Tensor, task: int) -> dict[str, Tensor]:
        params = self.model.parameters()
        loss = member_cross_entropy(self.model(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        grad = self._flat([p.grad for p in params])
        logged = {}
        if len(self.buffer):
            bx, by, _, _ = self.buffer.sample(self.config.replay_batch_size)
            ref_loss = member_cross_entropy(self.model(bx), by)
            ref = self._flat(torch.autograd.grad(ref_loss.sum(), params))
            dot = (grad * ref).sum(1)
            scale = torch.where(dot < 0, dot / (ref * ref).sum(1).clamp_min(1e-12), torch.zeros_like(dot))
            grad = grad - scale[:, None] * ref
            logged["projected"] = (dot < 0).float()
        offset = 0
        for p in params:
            size = p[0].numel()
            p.grad = grad[:, offset: offset + size].reshape(p.shape)
            offset += size
        self.optimizer_step()
        self.after_update()
        self.buffer.add(x, y, task)
        return {"loss": loss.detach(), **logged}
