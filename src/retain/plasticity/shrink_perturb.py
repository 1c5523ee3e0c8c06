"""Shrink and perturb (Ash & Adams, "On Warm-Starting Neural Network Training", NeurIPS 2020,
arXiv 1910.08475): theta <- lambda * theta + sigma * noise.

Noise: Gaussian with, per parameter tensor, the standard deviation of a freshly initialised copy
of that tensor, so sigma is relative to the initial scale (Ash & Adams perturb with a sample
of the initialiser; matching its scale keeps the idea without building a new model per step).
Per task it is applied at each task start from the second task on; per step it is the
Dohare et al. (Nature 2024) form, a tiny shrink and noise after every optimiser step. The
defaults (0.8 / 0.01 per task, 1 - 1e-4 / 1e-4 per step) are this project's choice, not values
from either paper.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def init_scales(model: nn.Module, seed: int = 0) -> dict[str, float]:
    """Std of each parameter tensor of a freshly re-initialised copy of ``model``."""
    fresh = copy.deepcopy(model)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for m in fresh.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    return {n: float(p.detach().float().std()) if p.numel() > 1 else 0.0 for n, p in fresh.named_parameters()}


@torch.no_grad()
def shrink_perturb(model: nn.Module, shrink: float, noise: float, scales: dict[str, float],
                   generator: torch.Generator | None = None) -> None:
    """In place: p <- shrink * p + noise * scale_p * N(0, 1) for every trainable parameter."""
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        p.mul_(shrink)
        if noise > 0 and scales.get(name, 0.0) > 0:
            eps = torch.randn(p.shape, generator=generator, dtype=p.dtype)
            p.add_(eps.to(p.device), alpha=noise * scales[name])
