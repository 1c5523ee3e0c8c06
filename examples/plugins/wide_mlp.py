"""A backbone plugin: one wide hidden layer with dropout, both set by backbone options.

    retain run --plugin examples/plugins/wide_mlp.py --backbone wide-mlp \
        --backbone-option width=512 --backbone-option dropout=0.2 --strategy er
"""

import math

from torch import Tensor, nn

from retain.models import register_backbone


class WideMLP(nn.Module):
    """Flatten, Linear(width), ReLU, Dropout, then ``head``: the classifier strategies and probes reach."""

    def __init__(self, inputs: int, num_classes: int, width: int, dropout: float):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(inputs, width), nn.ReLU(), nn.Dropout(dropout))
        self.head = nn.Linear(width, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


@register_backbone("wide-mlp")
def wide_mlp(input_shape: tuple[int, ...], num_classes: int, width: int = 1024, dropout: float = 0.0) -> WideMLP:
    """One hidden layer of ``width`` units (default 1024) with dropout (default 0)."""
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")  # retain refuses it before any run
    return WideMLP(math.prod(input_shape), num_classes, width, dropout)
