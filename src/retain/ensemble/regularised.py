"""Batched EWC (every Fisher kind, online too), SI and LwF.

The per-step terms are computed for all members at once from stacked state; the statistics taken
at task boundaries come from each member's own regulariser (its sequential code, its generator),
run on the member's synced weights by :meth:`EnsembleStrategy.end_task`, and are then stacked.
As in the sequential strategies, the logged ``loss`` is the cross-entropy alone and each
regulariser's term is logged under the strategy's name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from retain.ensemble.base import EnsembleStrategy, member_cross_entropy
from retain.ensemble.fisher import stacked_fisher
from retain.strategies.ewc import EWC, consolidate
from retain.strategies.lwf import LwF
from retain.strategies.penalties import sample_inputs
from retain.strategies.si import SI


def member_quadratic(params: dict[str, Tensor], weights: dict[str, Tensor], anchor: dict[str, Tensor]) -> Tensor:
    """Per member, sum_i w_i (theta_i - theta*_i)^2 over the stacked tensors -> ``[N]``."""
    return torch.stack([(weights[n] * (p - anchor[n]).pow(2)).flatten(1).sum(1) for n, p in params.items()]).sum(0)


def _stacked(dicts: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    return {n: torch.stack([d[n] for d in dicts]) for n in dicts[0]}


class EnsembleRegularised(EnsembleStrategy):
    """Cross-entropy plus one regulariser's per-member term ``penalty``."""

    def regulariser(self, i: int):
        (reg,) = self.members[i].regularisers.values()
        return reg

    def penalty(self, x: Tensor, logits: Tensor) -> Tensor:
        raise NotImplementedError

    def observe(self, x: Tensor, y: Tensor, task: int) -> dict[str, Tensor]:
        logits = self.model(x)
        loss = member_cross_entropy(logits, y)
        term = self.penalty(x, logits)
        self.step(loss, term)
        return {"loss": loss.detach(), self.strategy.name: term.detach()}


class EnsembleEWC(EnsembleRegularised):
    """:class:`retain.strategies.ewc.EWC` for N members."""

    strategy = EWC

    def __init__(self, members, make_optimizer):
        super().__init__(members, make_optimizer)
        self.fishers: list[dict[str, Tensor]] = []
        self.anchors: list[dict[str, Tensor]] = []

    def penalty(self, x: Tensor, logits: Tensor) -> Tensor:
        if not self.fishers:
            return logits.new_zeros(self.size)
        terms = [member_quadratic(self.model.params, f, a) for f, a in zip(self.fishers, self.anchors)]
        return 0.5 * self.config.ewc_lambda * torch.stack(terms).sum(0)

    def end_task(self, experiences) -> None:
        regs = [self.regulariser(i) for i in range(self.size)]
        if not self.model.layers:  # each member's Fisher and anchor, by its own EWCPenalty
            super().end_task(experiences)
            self.fishers = [_stacked([r.fishers[k] for r in regs]) for k in range(len(regs[0].fishers))]
            self.anchors = [_stacked([r.anchors[k] for r in regs]) for k in range(len(regs[0].anchors))]
            return
        # EWCPenalty.end_task for all members at once: the same samples (each member's generator, the
        # same calls), the Fisher as one product per layer (retain.ensemble.fisher), the same update.
        cfg = self.config
        samples = [sample_inputs(e, cfg.fisher_samples, r._gen) for e, r in zip(experiences, regs)]
        fisher = stacked_fisher(self.model, torch.stack([x for x, _ in samples]), torch.stack([y for _, y in samples]),
                                kind=cfg.fisher, generators=[r._gen for r in regs])
        self.fishers, self.anchors = consolidate(self.fishers, self.anchors, fisher, self.model.detached(), cfg)
        for i, reg in enumerate(regs):  # the member's own view, for its statistics and checkpoints
            reg.fishers = [{n: f[i] for n, f in fisher_k.items()} for fisher_k in self.fishers]
            reg.anchors = [{n: a[i] for n, a in anchor_k.items()} for anchor_k in self.anchors]


class EnsembleSI(EnsembleRegularised):
    """:class:`retain.strategies.si.SI` for N members: the path integral is accumulated on the
    stacked tensors from the gradient of the cross-entropy alone, element by element."""

    strategy = SI

    def __init__(self, members, make_optimizer):
        super().__init__(members, make_optimizer)
        self._restack()

    def _restack(self) -> None:
        regs = [self.regulariser(i) for i in range(self.size)]
        self.omega = _stacked([r.omega for r in regs])
        self.importance = _stacked([r.importance for r in regs])
        self.anchor = _stacked([r.anchor for r in regs])

    def penalty(self, x: Tensor, logits: Tensor) -> Tensor:
        return member_quadratic(self.model.params, self.importance, self.anchor).mul(self.config.si_c)

    def step(self, loss: Tensor, extra: Tensor | None = None) -> None:
        # As Regularised.backward with a tracking regulariser: the unregularised gradient first.
        self.optimizer.zero_grad(set_to_none=True)
        loss.sum().backward(retain_graph=True)
        params = self.model.params
        grads = {n: p.grad.detach().clone() for n, p in params.items() if p.grad is not None}
        before = {n: p.detach().clone() for n, p in params.items()}
        extra.sum().backward()
        self.optimizer_step()
        with torch.no_grad():
            for n, g in grads.items():
                self.omega[n] -= g * (params[n] - before[n])

    def end_task(self, experiences) -> None:
        for i in range(self.size):  # the member's SIPenalty consolidates its own path integral
            self.regulariser(i).omega = {n: w[i].clone() for n, w in self.omega.items()}
        super().end_task(experiences)
        self._restack()

    def sync(self) -> None:
        super().sync()
        for i in range(self.size):
            self.regulariser(i).omega = {n: w[i].clone() for n, w in self.omega.items()}


class EnsembleLwF(EnsembleRegularised):
    """:class:`retain.strategies.lwf.LwF` for N members: the teachers are the stacked weights
    taken at the last task end; each member distils over its own old classes."""

    strategy = LwF

    def __init__(self, members, make_optimizer):
        super().__init__(members, make_optimizer)
        self.teacher: dict[str, Tensor] | None = None
        self.columns: Tensor | None = None  # [N, old classes]

    def penalty(self, x: Tensor, logits: Tensor) -> Tensor:
        if self.teacher is None or self.columns is None:
            return logits.new_zeros(self.size)
        with torch.no_grad():
            old = self.model(x, self.teacher)
        n, b, _ = logits.shape
        cols = self.columns[:, None, :].expand(n, b, -1)
        t = self.config.lwf_temperature
        log_p = F.log_softmax(logits.gather(2, cols) / t, dim=2)
        log_q = F.log_softmax(old.gather(2, cols) / t, dim=2)
        kl = (log_q.exp() * (log_q - log_p)).flatten(1).sum(1) / b  # KL(old || new), batchmean
        return self.config.lwf_alpha * kl * t**2

    def end_task(self, experiences) -> None:
        super().end_task(experiences)
        self.teacher = self.model.detached()
        classes = [self.regulariser(i).old_classes for i in range(self.size)]
        if len({len(c) for c in classes}) != 1:
            raise ValueError("LwF members saw different numbers of classes")
        self.columns = torch.tensor(classes, device=self.model.device) if classes[0] else None
