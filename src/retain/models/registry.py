"""The backbone registry: ``factory(input_shape, num_classes, **options) -> nn.Module``.

Every backbone exposes ``features(x)`` (the representation before the classifier) and ``head``
(the final ``nn.Linear``) so strategies and probes can reach both."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from retain.registry import Registry

BACKBONES: Registry[Callable[..., nn.Module]] = Registry("backbone")
register_backbone = BACKBONES.register
