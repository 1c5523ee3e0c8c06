"""Task-free helpers for Online-LoRA: loss-plateau detection and the hard buffer.

Plateau detection follows Aljundi, Kelchtermans & Tuytelaars, "Task-Free Continual Learning"
(CVPR 2019), as used by Online-LoRA (Wei et al., WACV 2025): keep the last ``window`` losses; a
*new peak* is seen when the window mean exceeds the mean at the last plateau by more than that
plateau's standard deviation; a *plateau* fires when, after a new peak, the window mean is below
``mean_threshold`` and its variance below ``var_threshold``.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import torch
from torch import Tensor


class PlateauDetector:
    """Feed one loss per step with :meth:`update`; it returns True on the step a plateau fires."""

    def __init__(self, window: int = 5, mean_threshold: float = 1.0, var_threshold: float = 0.05):
        self.window, self.mean_threshold, self.var_threshold = window, mean_threshold, var_threshold
        self.losses: deque[float] = deque(maxlen=window)
        # Statistics of the window at the last plateau; zero at the start, so the first full
        # window counts as a peak and the first plateau can fire.
        self.last_mean, self.last_var = 0.0, 0.0
        self.new_peak = False

    def update(self, loss: float) -> bool:
        self.losses.append(float(loss))
        if len(self.losses) < self.window:
            return False
        values = torch.tensor(list(self.losses), dtype=torch.float64)
        mean, var = float(values.mean()), float(values.var(unbiased=False))
        # (the 1e-6 keeps float noise on a flat loss from counting as a peak)
        if not self.new_peak and mean > self.last_mean + math.sqrt(self.last_var) + 1e-6:
            self.new_peak = True
        if self.new_peak and mean < self.mean_threshold and var < self.var_threshold:
            self.last_mean, self.last_var, self.new_peak = mean, var, False
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"losses": torch.tensor(list(self.losses), dtype=torch.float64),
                "last": torch.tensor([self.last_mean, self.last_var], dtype=torch.float64),
                "new_peak": torch.tensor(self.new_peak)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.losses = deque(state["losses"].tolist(), maxlen=self.window)
        self.last_mean, self.last_var = state["last"].tolist()
        self.new_peak = bool(state["new_peak"])


class HardBuffer:
    """The ``size`` highest-loss samples seen so far (losses refreshed at each step they are
    replayed, so an entry leaves once the model has learned it)."""

    def __init__(self, size: int = 4):
        self.size = size
        self.x: Tensor | None = None
        self.y: Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.y is None else int(self.y.shape[0])

    def update(self, x: Tensor, y: Tensor, losses: Tensor) -> None:
        """Keep the top ``size`` of the candidates (x, y) by their current ``losses``."""
        if self.size == 0:
            return
        top = losses.detach().topk(min(self.size, len(losses))).indices
        self.x, self.y = x[top].detach().clone(), y[top].clone()

    def state_dict(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.x, self.y = state["x"], state["y"]
