"""Weight Space Consolidation (Cho, Moon, Chunara, Cho & Cha, "Forget Forgetting: Continual
Learning in a World of Abundant Memory", arXiv 2502.07274): rank-based parameter resets for
plasticity plus weight averaging for stability.

The paper's exact recipe could not be confirmed from a primary source here; these are this
project's choices, following the secondary description in docs/REFERENCE:

- warm-up: the first ``warmup`` fraction (default 10%) of each task's optimiser steps;
- score: |m_hat| * v_hat from Adam-style bias-corrected moments (beta 0.9 / 0.999) of the
  gradients seen during warm-up, tracked here so the fix works with SGD too;
- reset: in each parameter tensor, the top ``keep`` fraction (default 20%) by score keeps its
  value; the rest moves ``reset`` (default 0.5, i.e. halfway) back to the previous task's final
  weights. No reset in the first task (there is no previous task);
- averaging: a running mean of the weights over the steps after warm-up, loaded at task end.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class WeightSpaceConsolidation:
    """Stateful helper driven by the loop: ``begin_task``, ``after_step``, ``end_task``."""

    def __init__(self, model: nn.Module, *, warmup: float = 0.1, keep: float = 0.2, reset: float = 0.5):
        self.model, self.warmup_frac, self.keep, self.reset = model, warmup, keep, reset
        self.prev: dict[str, Tensor] | None = None
        self.avg: dict[str, Tensor] | None = None
        self.m: dict[str, Tensor] = {}
        self.v: dict[str, Tensor] = {}
        self.step = self.warmup = self.n_avg = 0
        self.resets = 0

    def _params(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}

    def begin_task(self, task: int, steps: int) -> None:
        self.warmup = max(1, round(self.warmup_frac * steps))
        self.step, self.avg, self.n_avg = 0, None, 0
        self.m = {n: torch.zeros_like(p) for n, p in self._params().items()}
        self.v = {n: torch.zeros_like(p) for n, p in self._params().items()}
        self.has_prev = task > 0 and self.prev is not None

    @torch.no_grad()
    def after_step(self) -> None:
        self.step += 1
        params = self._params()
        if self.step <= self.warmup:
            for n, p in params.items():
                if p.grad is not None:
                    self.m[n].mul_(0.9).add_(p.grad, alpha=0.1)
                    self.v[n].mul_(0.999).addcmul_(p.grad, p.grad, value=0.001)
            if self.step == self.warmup:
                if self.has_prev:
                    self._reset(params)
                self.avg, self.n_avg = {n: p.detach().clone() for n, p in params.items()}, 1
            return
        self.n_avg += 1
        for n, p in params.items():
            self.avg[n].add_(p.detach() - self.avg[n], alpha=1.0 / self.n_avg)

    def _reset(self, params: dict[str, nn.Parameter]) -> None:
        k = self.step
        for n, p in params.items():
            score = (self.m[n] / (1 - 0.9 ** k)).abs() * (self.v[n] / (1 - 0.999 ** k))
            n_keep = max(1, round(self.keep * p.numel()))
            cut = score.flatten().kthvalue(max(1, p.numel() - n_keep + 1)).values if p.numel() > n_keep else None
            low = score < cut if cut is not None else torch.zeros_like(p, dtype=torch.bool)
            target = p + self.reset * (self.prev[n] - p)
            p.copy_(torch.where(low, target, p))
            self.resets += int(low.sum())

    @torch.no_grad()
    def end_task(self) -> None:
        params = self._params()
        if self.avg is not None:
            for n, p in params.items():
                p.copy_(self.avg[n])
        self.prev = {n: p.detach().clone() for n, p in params.items()}
