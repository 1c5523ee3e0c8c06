"""The batched counterpart of :class:`retain.strategies.Strategy`: one object trains the N
members of an ensemble, each step on a stack of the members' own batches.

Every ``observe`` computes one loss per member (a vector ``[N]``) and steps on their *sum*, so
each member gets exactly its own gradient (see :mod:`retain.ensemble.stacked`). The members'
own strategy objects, built as their sequential runs build them, are kept: their random
generators drive the batched draws, and :meth:`EnsembleStrategy.sync` writes each member's
state back into its own object so its statistics, probes and records are those of a plain run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from retain.benchmarks.base import Experience
from retain.ensemble import manual
from retain.ensemble.stacked import StackedModel
from retain.strategies.base import Strategy


def member_cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """Each member's mean cross-entropy: ``logits`` ``[N, B, C]``, ``y`` ``[N, B]`` -> ``[N]``."""
    n, b = y.shape
    return F.cross_entropy(logits.reshape(n * b, -1), y.reshape(-1), reduction="none").view(n, b).mean(1)


def member_mse(outputs: Tensor, targets: Tensor) -> Tensor:
    """Each member's mean squared error over its rows and outputs -> ``[N]``."""
    return (outputs - targets).pow(2).flatten(1).mean(1)


class ForwardPass:
    """One step's outputs ``[N, rows, outputs]`` and its loss terms, whichever way it steps: with
    autograd (``grad`` None: the terms are graph nodes, :meth:`step` runs the strategy's ``step``),
    or by the hand-written backward (:mod:`retain.ensemble.manual`: each term adds its weighted
    gradient into ``grad``, zero at first, and :meth:`step` applies it). A term's value is
    unweighted either way. A term reads a slice of the rows, or (:meth:`cross_entropy`) rows
    picked per member, ``[N, k]``, so two terms may share a row (DER++'s two draws from one
    buffer); a row no term reads gets no gradient."""

    def __init__(self, impl: EnsembleStrategy, outputs: Tensor, kept: list[Tensor] | None = None,
                 grad: Tensor | None = None, lr: float | None = None):
        self.impl, self.outputs, self.kept, self.grad, self.lr = impl, outputs, kept, grad, lr

    def cross_entropy(self, rows: slice | Tensor, y: Tensor, weight: float = 1.0) -> Tensor:
        """Each member's mean cross-entropy of the outputs' ``rows`` (a slice, or each member's
        rows ``[N, k]``) against ``y`` -> ``[N]``."""
        if isinstance(rows, slice):
            if self.grad is None:
                return member_cross_entropy(self.outputs[:, rows], y)
            return manual.cross_entropy(self.outputs[:, rows], y, weight, self.grad[:, rows])
        at = rows.unsqueeze(2).expand(-1, -1, self.outputs.shape[2])
        picked = self.outputs.gather(1, at)
        if self.grad is None:
            return member_cross_entropy(picked, y)
        grad = torch.zeros_like(picked)
        loss = manual.cross_entropy(picked, y, weight, grad)
        self.grad.scatter_add_(1, at, grad)
        return loss

    def mse(self, rows: slice, targets: Tensor, weight: float = 1.0) -> Tensor:
        """Each member's mean squared error of the outputs' ``rows`` against ``targets`` -> ``[N]``."""
        if self.grad is None:
            return member_mse(self.outputs[:, rows], targets)
        return manual.mse(self.outputs[:, rows], targets, weight, self.grad[:, rows])

    def step(self, loss: Tensor) -> None:
        """Step every member on ``loss`` ``[N]`` (the weighted sum of this pass's terms)."""
        impl = self.impl
        if self.grad is None:
            impl.step(loss)
            return
        active = None
        if impl.retired:
            active = torch.ones(impl.size, device=self.grad.device)
            active[sorted(impl.retired)] = 0.0
        manual.backward_sgd(impl.model, self.kept, self.grad, self.lr, active)
        impl.after_update()


class EnsembleStrategy:
    """Naive fine-tuning for N members: each member's cross-entropy on its own batch.

    Subclasses mirror one sequential strategy each and must draw from the members' generators in
    the order that strategy does; ``strategy`` names the sequential class they mirror."""

    strategy: ClassVar[type[Strategy] | None] = None

    def __init__(self, members: list[Strategy], make_optimizer: Callable[[list[Tensor]], torch.optim.Optimizer]):
        self.members = members
        self.size = len(members)
        self.config = members[0].config
        self.model = StackedModel([m.model for m in members])
        self.make_optimizer = make_optimizer
        self.optimizer = make_optimizer(self.model.parameters())
        self.retired: set[int] = set()  # members whose loss turned non-finite (see retire)
        # the hand-written backward (retain.ensemble.manual) serves an MLP whose step is the plain one
        self._manual = manual.chain(self.model) and type(self).step is EnsembleStrategy.step

    @classmethod
    def unsupported(cls, config: Any) -> str | None:
        """Why this configuration of the strategy cannot be batched (None: it can)."""
        return None

    # ---- hooks, as the sequential loop calls them, one experience per member ----------------
    def begin_task(self, experiences: list[Experience]) -> None:
        """Each member's own ``begin_task`` on its synced weights (a regulariser's bookkeeping at
        the boundary runs as in the sequential run); subclasses then read what they stack."""
        self.sync_model()
        for member, exp in zip(self.members, experiences):
            member.begin_task(exp)

    def begin_epoch(self, sizes: list[int]) -> None:
        """Called before each pass over a task's data with the coming steps' batch sizes (replay
        makes the epoch's buffer draws here)."""

    def observe(self, x: Tensor, y: Tensor, task: int) -> dict[str, Tensor]:
        """One optimiser step for every member on its batch (``x`` ``[N, B, ...]``, ``y``
        ``[N, B]``); returns per-member values ``[N]`` to log, at least ``loss``."""
        run = self.forward(x)
        loss = run.cross_entropy(slice(None), y)
        run.step(loss)
        return {"loss": loss.detach()}

    def end_task(self, experiences: list[Experience]) -> None:
        """Each member's own ``end_task`` on its synced weights: the statistics taken at a task's
        end (EWC's Fisher) come from the sequential code with the member's own generators."""
        self.sync_model()
        for member, exp in zip(self.members, experiences):
            member.end_task(exp)

    # ---- helpers -------------------------------------------------------------------------
    def step(self, loss: Tensor, extra: Tensor | None = None) -> None:
        """One optimiser step on the sum over members of ``loss + extra`` (both ``[N]``)."""
        self.optimizer.zero_grad(set_to_none=True)
        (loss if extra is None else loss + extra).sum().backward()
        self.optimizer_step()
        self.after_update()

    def optimizer_step(self) -> None:
        """The optimiser's step, with the gradients of retired members set to zero first."""
        if self.retired:
            rows = torch.tensor(sorted(self.retired), device=self.model.device)
            for p in self.model.parameters():
                if p.grad is not None:
                    p.grad[rows] = 0.0
        self.optimizer.step()

    def manual_lr(self) -> float | None:
        """The learning rate when this step may run the hand-written backward pass
        (:mod:`retain.ensemble.manual`: an MLP, plain SGD, :meth:`step` not overridden), else None."""
        return manual.plain_sgd_lr(self.optimizer) if self._manual else None

    def forward(self, x: Tensor) -> ForwardPass:
        """The members' outputs on ``x`` for one step, through the hand-written backward when
        :meth:`manual_lr` allows it, else through autograd (see :class:`ForwardPass`)."""
        lr = self.manual_lr()
        if lr is None:
            return ForwardPass(self, self.model(x))
        outputs, kept = manual.forward(self.model, x)
        return ForwardPass(self, outputs, kept, torch.zeros_like(outputs), lr)

    @torch.no_grad()
    def retire(self, i: int) -> None:
        """Stop member ``i`` (its loss turned non-finite; its run is recorded as failed): its
        weights become a copy of a healthy member's, so boundary statistics taken on them stay
        finite, and from now on its gradients and optimiser moments are zero, so it never moves.
        The others are untouched: no gradient crosses members."""
        self.retired.add(i)
        healthy = next((k for k in range(self.size) if k not in self.retired), None)
        for p in self.model.parameters():
            p[i] = p[healthy] if healthy is not None else 0.0
            for value in self.optimizer.state.get(p, {}).values():
                if isinstance(value, Tensor) and value.shape == p.shape:
                    value[i] = 0.0

    def after_update(self) -> None:
        """Called after every optimiser step."""

    def sync_model(self) -> None:
        """Write each member's parameters into its own model."""
        for i, member in enumerate(self.members):
            self.model.copy_to(i, member.model)

    def sync(self) -> None:
        """Write each member's parameters (and, in subclasses, its other state) into its own
        strategy object, for its statistics, probes and record."""
        self.sync_model()

    def stats(self, i: int) -> dict[str, Any]:
        """Member ``i``'s strategy statistics after :meth:`sync`."""
        return self.members[i].stats()
