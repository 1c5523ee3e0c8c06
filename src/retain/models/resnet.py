"""ResNet-18 for 32 x 32 images (He et al. 2016, CIFAR variant: 3x3 stem, no max-pool).

``resnet18-reduced`` is the narrow version with ``nf=20`` base filters that GEM (Lopez-Paz &
Ranzato 2017) introduced for continual learning and Avalanche reuses (about 1.1M parameters
instead of 11M; the CIFAR benchmarks' default); ``resnet18`` is the full width, ``nf=64``, which
the DER paper's code uses on Split CIFAR-10 (Mammoth's ``resnet18``; ``--preset der-scifar10``). Both end in
global average pooling, so larger inputs (CORe50 at 128 x 128) work unchanged.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from retain.errors import ConfigError
from retain.models.pretrained import load_weights
from retain.models.registry import register_backbone


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(planes))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """Stem, four stages of BasicBlocks (widths nf, 2nf, 4nf, 8nf), global pooling, linear head."""

    def __init__(self, in_channels: int, num_classes: int, nf: int = 20, blocks: tuple[int, ...] = (2, 2, 2, 2)):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, nf, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(nf)
        stages, in_planes = [], nf
        for i, n in enumerate(blocks):
            planes = nf * 2 ** i
            layers = []
            for b in range(n):
                layers.append(BasicBlock(in_planes, planes, stride=2 if (i > 0 and b == 0) else 1))
                in_planes = planes
            stages.append(nn.Sequential(*layers))
        self.layers = nn.Sequential(*stages)
        self.feature_dim = in_planes
        self.head = nn.Linear(in_planes, num_classes)

    def features(self, x: Tensor) -> Tensor:
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _image_channels(name: str, input_shape: tuple[int, ...]) -> int:
    if len(input_shape) != 3:
        raise ConfigError(f"{name}: needs image inputs C x H x W, got input shape {tuple(input_shape)} "
                          "(use a vision benchmark such as split-cifar100, or the mlp backbone)")
    return int(input_shape[0])


def _check_nf(name: str, nf) -> int:
    if not isinstance(nf, int) or isinstance(nf, bool) or nf < 1:
        raise ConfigError(f"{name}: nf (base number of filters) must be a positive integer, got {nf!r}")
    return nf


@register_backbone("resnet18-reduced")
def resnet18_reduced(input_shape: tuple[int, ...], num_classes: int, nf: int = 20,
                     checkpoint: str | None = None) -> ResNet:
    """Reduced ResNet-18 of GEM/DER (nf=20 base filters, ~1.1M parameters) for 32x32 images."""
    model = ResNet(_image_channels("resnet18-reduced", input_shape), num_classes, _check_nf("resnet18-reduced", nf))
    return load_weights(model, checkpoint) if checkpoint else model


@register_backbone("resnet18")
def resnet18(input_shape: tuple[int, ...], num_classes: int, nf: int = 64, checkpoint: str | None = None) -> ResNet:
    """Full-width ResNet-18 (nf=64, ~11M parameters), CIFAR stem for 32x32 images."""
    model = ResNet(_image_channels("resnet18", input_shape), num_classes, _check_nf("resnet18", nf))
    return load_weights(model, checkpoint) if checkpoint else model
