"""Backbones, registered by name."""

from retain.models import mlp, resnet, vit  # noqa: F401  (register built-ins)
from retain.models.registry import BACKBONES, register_backbone

__all__ = ["BACKBONES", "register_backbone"]
