"""Batched experience replay and dark experience replay (DER, DER++) over stacked reservoirs.

Each mirrors its sequential strategy's ``observe`` draw for draw (the buffer's generator is
consumed in the same order: ER samples then inserts; DER samples its MSE batch, then DER++ its
CE batch, then inserts). Where the sequential strategy runs separate forward passes (DER), the
batched one runs one pass over the concatenated rows: the backbones batched here have no batch
statistics, so every row's output is the same function of that row (float rounding aside).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from retain.ensemble.base import EnsembleStrategy, member_cross_entropy
from retain.ensemble.buffer import StackedReservoir
from retain.strategies.agem import AGEM
from retain.strategies.der import DER
from retain.strategies.derpp import DERpp
from retain.strategies.er import ER


class EnsembleReplay(EnsembleStrategy):
    """Owns the stacked reservoir built from the members' own buffers. Each step draws
    :attr:`draws_per_step` times from the buffer (when it holds items), then offers its batch; at an
    epoch's start these choices are made for the whole epoch (:meth:`StackedReservoir.plan`) and
    :meth:`step_draws` hands each step its own."""

    draws_per_step = 1

    def __init__(self, members, make_optimizer):
        super().__init__(members, make_optimizer)
        self.buffer = StackedReservoir([m.buffer for m in members])

    def begin_epoch(self, sizes: list[int]) -> None:
        self.buffer.plan(sizes, self.draws_per_step, self.config.replay_batch_size, self.combine_draws)

    def combine_draws(self, draws: list[Tensor]) -> Any:
        """What a step reads of its draws (``[N, k]`` slots each); made when they are drawn."""
        return draws

    def step_draws(self) -> Any:
        """This step's draws as :meth:`combine_draws` gives them (planned, or drawn now), or None
        when the buffer is empty."""
        if self.buffer.planned:
            return self.buffer.next_draws()
        if not len(self.buffer):
            return None
        return self.combine_draws([self.buffer.draw(self.config.replay_batch_size)
                                   for _ in range(self.draws_per_step)])

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
        draws = self.step_draws()
        if draws is not None:
            inputs = x.new_empty((self.size, y.shape[1] + draws[0].shape[1], *x.shape[2:]))
            inputs[:, : y.shape[1]] = x
            _, by, _ = self.buffer.take(draws[0], out=inputs[:, y.shape[1]:])
            labels = torch.cat([y, by], 1)
        run = self.forward(inputs)
        loss = run.cross_entropy(slice(None), labels)
        run.step(loss)
        self.buffer.add(x, y, task)
        return {"loss": loss.detach()}


class EnsembleDER(EnsembleReplay):
    """:class:`retain.strategies.der.DER` (and DER++ with ``beta > 0``) for N members.

    DER++'s two draws (the MSE batch and the CE batch, each ``k`` distinct items of one buffer)
    share items: ``k * k / capacity`` per member in expectation (33 of 128 with 500). Each item
    a member drew goes through the network once: the rows are [current; MSE draw; CE items not in
    the MSE draw; padding up to 2k, whatever the other members drew], and the CE term reads its items'
    rows wherever they are (:meth:`ForwardPass.cross_entropy` with rows ``[N, k]``), so a shared
    row gets both terms' gradients. Each row's outputs are the same function of its input either
    way (no batch statistics); only the products' rounding may differ."""

    strategy = DER

    @property
    def draws_per_step(self) -> int:
        return 2 if getattr(self.config, "beta", 0.0) > 0 else 1

    def combine_draws(self, draws: list[Tensor]) -> tuple[Tensor, Tensor | None, int]:
        """(slots of the step's replay rows, the CE draw's rows among them or None, MSE draw size)."""
        if len(draws) == 1:
            return draws[0], None, draws[0].shape[1]
        return *shared_rows(draws[0], draws[1], self.buffer.capacity), draws[0].shape[1]

    def observe(self, x: Tensor, y: Tensor, task: int) -> dict[str, Tensor]:
        cfg, b = self.config, y.shape[1]
        beta = getattr(cfg, "beta", 0.0)
        logged, inputs = {}, x
        draws = self.step_draws()
        if draws is not None:  # one batch [current; MSE draw; CE draw's other items], written in place
            slots, ce_rows, k = draws
            inputs = x.new_empty((self.size, b + slots.shape[1], *x.shape[2:]))
            inputs[:, :b] = x
            _, labels, logits = self.buffer.take(slots, out=inputs[:, b:])
        run = self.forward(inputs)
        loss = run.cross_entropy(slice(0, b), y)
        if inputs is not x:
            distill = run.mse(slice(b, b + k), logits[:, :k], cfg.alpha)
            loss = loss + cfg.alpha * distill
            logged["distill"] = distill.detach()
            if ce_rows is not None:
                ce_rows = ce_rows.to(labels.device)
                replay_ce = run.cross_entropy(ce_rows + b, labels.gather(1, ce_rows), beta)
                loss = loss + beta * replay_ce
                logged["replay_ce"] = replay_ce.detach()
        run.step(loss)
        self.buffer.add(x, y, task, logits=run.outputs[:, :b].detach())
        return {"loss": loss.detach(), **logged}


def shared_rows(first: Tensor, second: Tensor, capacity: int) -> tuple[Tensor, Tensor]:
    """Two draws of distinct slots per member (``[N, k]`` each, on the host) as one list of rows:
    (slots ``[N, 2k]``: ``first``, then the slots of ``second`` not in ``first`` in their order,
    then ``first``'s first slot repeated up to ``2k``; the row of each of ``second``'s slots in
    that list ``[N, k]``). In numpy: a few hundred numbers a step.

    Every member gets ``2k`` rows, what no sharing would need, rather than as many as the member
    with the most distinct items: the padding rows add exact zeros to the weight gradients, but
    the number of rows a product sums over sets its blocking and so its rounding, and a count
    taken over the members would make one member's numbers depend on which others share its
    ensemble (``--seeds 3`` and ``--seeds 5`` gave seed 0 different matrices)."""
    first_np, second_np = first.numpy(), second.numpy()
    n, k = first_np.shape
    members = np.arange(n)[:, None]
    at = np.full((n, capacity), -1, dtype=np.int64)
    at[members, first_np] = np.arange(k)  # slot -> its row in first
    in_first = np.take_along_axis(at, second_np, 1)
    new = in_first < 0
    order = k + new.cumsum(1) - 1  # where each new slot goes, after first's k rows
    extra = k  # as if no item were shared: a count that no other member changes (see the docstring)
    slots = np.repeat(first_np[:, :1], k + extra + 1, 1)
    slots[:, :k] = first_np
    slots[members, np.where(new, order, k + extra)] = second_np  # slots already listed land on the spare column
    return torch.from_numpy(slots[:, : k + extra]), torch.from_numpy(np.where(new, order, in_first))


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
        draws = self.step_draws()
        if draws is not None:
            bx, by, _ = self.buffer.take(draws[0])
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
