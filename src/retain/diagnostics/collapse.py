"""Plasticity collapse: is the network still able to learn? Probes of a layer's activations on a
fixed probe batch, and an event when learning accuracy falls steadily while dormant units rise.

- ReDo's dormant score (Sokar et al., ICML 2023): s_i = E|h_i| / (mean_k E|h_k| + 1e-9); a unit
  is tau-dormant when s_i <= tau.
- "Inactive": a ReLU unit positive on under 1% of the probe inputs (Dohare et al., Nature 2024
  count units that are never active; 1% is the tolerant version).
- Effective rank (Roy & Vetterli 2007): exp(-sum p_k log p_k), p_k = sigma_k / sum(sigma).
- srank (Kumar et al., ICLR 2021): the smallest k with sum_{i<=k} sigma_i >= 0.99 sum(sigma).
  Both use the singular values of the uncentred N x d feature matrix, as Kumar does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from retain.diagnostics import Event, make_event

RECOMMEND = "try a plasticity fix: --redo (resets dormant units), --shrink-perturb or --wsc"


def _acts(h: Tensor) -> Tensor:
    if h.dim() < 2 or h.shape[0] == 0:
        raise ValueError(f"activations must be (samples, units, ...) with samples > 0, got {tuple(h.shape)}")
    h = h.detach().float()
    return h.flatten(2).mean(2) if h.dim() > 2 else h  # conv maps: one value per channel


def redo_scores(h: Tensor) -> Tensor:
    """ReDo's normalised activation score of each unit (mean 1 over the layer unless all are 0)."""
    m = _acts(h).abs().mean(0)
    return m / (m.mean() + 1e-9)


def dormant_fraction(h: Tensor, tau: float = 0.025) -> float:
    """Fraction of units whose ReDo score is <= ``tau`` (a dead layer gives 1.0)."""
    return float((redo_scores(h) <= tau).float().mean())


def inactive_fraction(h: Tensor, min_active: float = 0.01) -> float:
    """Fraction of units positive on fewer than ``min_active`` of the inputs."""
    return float(((_acts(h) > 0).float().mean(0) < min_active).float().mean())


def singular_values(feats: Tensor) -> np.ndarray:
    f = feats.detach().double().reshape(feats.shape[0], -1)
    return torch.linalg.svdvals(f).numpy()


def effective_rank(feats: Tensor) -> float:
    """exp(entropy of the normalised singular values); d for a d-dim orthogonal frame, 1 for rank 1."""
    s = singular_values(feats)
    if s.sum() <= 0:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def energy_rank(feats: Tensor, energy: float = 0.99) -> int:
    """Smallest k whose top-k singular values hold ``energy`` of their sum (Kumar's srank)."""
    s = singular_values(feats)
    if s.sum() <= 0:
        return 0
    return int(np.searchsorted(np.cumsum(s) / s.sum(), energy - 1e-12) + 1)


def mean_abs_weight(model: nn.Module) -> float:
    """Mean |w| over all weight matrices/kernels (biases excluded)."""
    ws = [p.detach().abs().flatten() for n, p in model.named_parameters() if p.dim() > 1]
    return float(torch.cat(ws).mean()) if ws else 0.0


def slope(values: Sequence[float]) -> float:
    """Least-squares slope per step of ``values`` (0 for fewer than 2 values)."""
    if len(values) < 2:
        return 0.0
    return float(np.polyfit(np.arange(len(values), dtype=np.float64), np.asarray(values, np.float64), 1)[0])


def _collapsing(learn: Sequence[float], dormant: Sequence[float], window: int, min_drop: float) -> bool:
    """Medians of the two halves of the window, so one badly learnt task (a single outlier, common
    on small test sets) neither fires nor hides a collapse."""
    if len(learn) < window or len(dormant) < window:
        return False
    la, da, h = np.asarray(learn[-window:]), np.asarray(dormant[-window:]), window // 2
    falls = slope(la) < 0 and float(np.median(la[:h]) - np.median(la[-h:])) >= min_drop
    rises = float(np.median(da[-h:])) > float(np.median(da[:h]))
    return falls and rises


def collapse_events(learning_acc: Sequence[float], dormant: Sequence[float], *, window: int = 10,
                    min_drop: float = 0.05, advice: str = RECOMMEND) -> list[Event]:
    """An event at the last task when, over the last ``window`` tasks, learning accuracy R[i][i]
    fell steadily (negative slope, and the median of the second half of the window is at least
    ``min_drop`` below the first half's) while the dormant fraction's median rose. It fires
    when the condition starts to hold, not at every task while it lasts. The message ends with
    ``advice`` (none when empty: the bounds get none, see retain.diagnostics.advice)."""
    if window < 4:
        raise ValueError(f"collapse window must be >= 4 tasks, got {window}")
    if not _collapsing(learning_acc, dormant, window, min_drop):
        return []
    if _collapsing(learning_acc[:-1], dormant[:-1], window, min_drop):
        return []
    t = len(learning_acc) - 1
    h = window // 2
    fall = float(np.median(learning_acc[-window:][:h]) - np.median(learning_acc[-h:]))
    msg = (f"plasticity collapse: learning accuracy fell {100 * fall:.1f} points (median) over the last {window} tasks "
           f"while dormant units rose from {100 * dormant[-window]:.0f}% to {100 * dormant[-1]:.0f}%")
    msg = f"{msg}; {advice}" if advice else msg
    return [make_event("plasticity_collapse", t, fall, min_drop, msg)]
