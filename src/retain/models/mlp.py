"""Fully connected backbone (the DER paper's 784-100-100-10 MLP for MNIST)."""

from __future__ import annotations

import math

from torch import Tensor, nn

from retain.errors import ConfigError
from retain.models.registry import register_backbone


class MLP(nn.Module):
    """Flatten, then Linear+ReLU per hidden width, then a linear head over all classes."""

    def __init__(self, in_features: int, hidden: tuple[int, ...], num_classes: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)
        self.feature_dim = width

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


@register_backbone("mlp")
def mlp(input_shape: tuple[int, ...], num_classes: int, hidden: tuple[int, ...] = (100, 100)) -> MLP:
    """MLP, hidden widths configurable (default 100-100)."""
    if not hidden or any(int(h) <= 0 for h in hidden):
        raise ConfigError(f"mlp: hidden widths must be positive integers, got {hidden!r}")
    return MLP(math.prod(int(s) for s in input_shape), tuple(int(h) for h in hidden), num_classes)
