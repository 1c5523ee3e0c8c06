"""RanPAC: frozen features, a fixed random projection, and a ridge-regression head in closed form.

McDonnell et al., "RanPAC: Random Projections and Pre-trained Models for Continual Learning",
NeurIPS 2023, https://arxiv.org/abs/2307.02251 (code: RanPAC/RanPAC). The backbone is frozen
and each distinct training image passes it once (:class:`~retain.memory.feature_cache.FeatureCache`).
Its features f go through a fixed random matrix W ~ N(0, 1) and a ReLU, h = ReLU(f W) of width
``projection_dim`` (0: h = f). The head keeps G = sum h^T h and Q = sum h^T y (y one-hot) over every
sample seen, and its weights are solve(G + lambda I, Q): the least-squares classifier of all data
so far, with no gradient step and nothing forgotten by the head. With ``ridge`` 0, lambda is chosen
from 1e-8 ... 1e8 by accuracy on every fifth sample, the head solved on the other four; the final
weights use every sample. ``classifier = "ncm"`` is SimpleCIL instead (Zhou et al. 2023): cosine to
each class's mean feature (with ``projection_dim`` 0, the raw features' prototypes).

The weights are solved after each task and, task-free, whenever the model is used after new data.

Deviations: no first-task adaptation of the backbone (the paper trains an adapter or SSF on the
first task, then freezes it: here the backbone is used as loaded); lambda is chosen on held-out
samples of all data so far, not of the current task only; default width 1000 (the paper: 10000,
the preset's value) so that the Gram matrix and its 17 solves stay cheap on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from retain.memory.feature_cache import FeatureCache
from retain.strategies.base import Strategy, register_strategy
from retain.strategies.config import StrategyConfig, hp

RIDGE_GRID = tuple(10.0 ** k for k in range(-8, 9))
HELD_OUT_EVERY = 5  # every fifth distinct sample chooses lambda (RanPAC's 80/20 split)


@dataclass
class RanPACConfig(StrategyConfig):
    projection_dim: int = hp(1000, "RanPAC: width of the random projection (0: none; paper 10000)", low=0)
    ridge: float = hp(0.0, "RanPAC: ridge lambda (0: chosen from 1e-8..1e8 on every fifth sample)", low=0.0)
    classifier: str = hp("ridge", "RanPAC: ridge (closed-form least squares) or ncm (cosine to class means: "
                                  "SimpleCIL)", choices=("ridge", "ncm"))


class RidgeHead(nn.Module):
    """h = ReLU(f W) (W fixed), logits = h @ weight; the statistics G, Q and class counts are buffers
    (they travel with the model's state), ``weight`` is recomputed from them by :meth:`solve`."""

    def __init__(self, in_features: int, num_classes: int, cfg: RanPACConfig, held_out=None):
        super().__init__()
        self.in_features, self.cfg, self.held_out = in_features, cfg, held_out
        width = cfg.projection_dim or in_features
        if cfg.projection_dim:
            self.register_buffer("projection", torch.randn(in_features, width))
        else:
            self.projection = None
        self.register_buffer("gram", torch.zeros(width, width, dtype=torch.float64))
        self.register_buffer("sums", torch.zeros(width, num_classes, dtype=torch.float64))
        self.register_buffer("held_gram", torch.zeros(width, width, dtype=torch.float64))
        self.register_buffer("held_sums", torch.zeros(width, num_classes, dtype=torch.float64))
        self.register_buffer("counts", torch.zeros(num_classes, dtype=torch.int64))
        self.register_buffer("weight", torch.zeros(width, num_classes))
        self.stale, self.chosen_ridge = False, float(cfg.ridge)

    def expand(self, f: Tensor) -> Tensor:
        return f if self.projection is None else F.relu(f @ self.projection)

    def add(self, f: Tensor, y: Tensor, held: Tensor | None = None) -> None:
        """Accumulate the statistics of samples ``(f, y)``; ``held`` marks those that choose lambda."""
        h = self.expand(f).double()
        onehot = F.one_hot(y, self.sums.shape[1]).double()
        self.gram += h.T @ h
        self.sums += h.T @ onehot
        self.counts += onehot.sum(0).long()
        if held is not None and held.any():
            self.held_gram += h[held].T @ h[held]
            self.held_sums += h[held].T @ onehot[held]
        self.stale = True

    def solve(self) -> None:
        if self.cfg.classifier == "ncm":
            means = self.sums / self.counts.clamp(min=1)
            self.weight.copy_(F.normalize(means, dim=0).float())
        else:
            if self.cfg.ridge == 0 and self.held_out is not None:
                self.chosen_ridge = self._choose_ridge()
            eye = torch.eye(len(self.gram), dtype=self.gram.dtype, device=self.gram.device)
            self.weight.copy_(torch.linalg.solve(self.gram + self.chosen_ridge * eye, self.sums).float())
        self.stale = False

    def _choose_ridge(self) -> float:
        """The grid value whose head, solved without the held-out samples, is most accurate on them."""
        f, y = self.held_out()
        if len(y) == 0:
            return 1.0
        gram, sums = self.gram - self.held_gram, self.sums - self.held_sums
        eye = torch.eye(len(gram), dtype=gram.dtype, device=gram.device)
        h = self.expand(f).double()
        # One solve per value (eigh would serve all at once, but is far slower than 17 solves on CPUs).
        scores = [float(((h @ torch.linalg.solve(gram + lam * eye, sums)).argmax(1) == y).double().mean())
                  for lam in RIDGE_GRID]
        return RIDGE_GRID[max(range(len(scores)), key=scores.__getitem__)]  # the first of the best

    def forward(self, f: Tensor) -> Tensor:
        if self.stale:
            self.solve()
        h = self.expand(f)
        logits = (F.normalize(h, dim=1) if self.cfg.classifier == "ncm" else h) @ self.weight
        return logits.masked_fill(self.counts == 0, float("-inf"))  # classes never seen are never predicted


@register_strategy("ranpac")
class RanPAC(Strategy):
    """Frozen features, fixed random projection and a closed-form ridge head (or class means): no gradient steps."""

    Config = RanPACConfig
    family = "other"
    default_study = False  # its premise is a pretrained backbone
    cost = ("one forward pass of the frozen backbone per distinct image (a cache of its features); a "
            "projection_dim^2 Gram matrix; one linear solve per task")

    def __init__(self, model: nn.Module, config: RanPACConfig, **kwargs):
        super().__init__(model, config, **kwargs)
        self.model.requires_grad_(False)
        self.model.head = RidgeHead(self.model.head.in_features, self.num_classes, config,
                                    held_out=self._held_out).to(self.device)
        self.cache = FeatureCache(self._encode)

    def _encode(self, x: Tensor) -> Tensor:
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                return self.model.features(x).float()
        finally:
            self.model.train(was)

    def _held_out(self) -> tuple[Tensor, Tensor]:
        idx = torch.arange(len(self.cache), device=self.device)
        return self.cache.rows(idx[idx % HELD_OUT_EVERY == HELD_OUT_EVERY - 1])

    def observe(self, x: Tensor, y: Tensor, task: int, *, plain: Tensor | None = None) -> dict[str, Tensor]:
        before = len(self.cache)
        _, where = self.cache(x if plain is None else plain, y)
        new = torch.unique(where[where >= before])  # first seen now, each once
        if len(new):
            f, labels = self.cache.rows(new)
            self.model.head.add(f, labels, new % HELD_OUT_EVERY == HELD_OUT_EVERY - 1)
        return {"loss": torch.zeros((), device=self.device)}  # nothing is trained by gradient

    def end_task(self, experience) -> None:
        self.model.head.solve()

    def stats(self) -> dict[str, Any]:
        return {"cached_samples": len(self.cache), "encoded": self.cache.encoded,
                "ridge": self.model.head.chosen_ridge}

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"cache": self.cache.state_dict(),
                                       "ridge": torch.tensor(self.model.head.chosen_ridge)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.cache.load_state_dict(state["cache"])
        self.model.head.chosen_ridge = float(state["ridge"])
        self.model.head.stale = True
