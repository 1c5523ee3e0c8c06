"""Backbones, registered by name."""

from retain.models.registry import BACKBONES, register_backbone
from retain.registry import import_submodules

import_submodules(__name__, __path__)  # every module registers its backbones; a new file needs no listing

__all__ = ["BACKBONES", "register_backbone"]
