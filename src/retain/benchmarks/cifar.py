"""Split CIFAR-10 and Split CIFAR-100, read from the official "python version" files.

Protocol of the DER paper (Buzzega et al., NeurIPS 2020, Mammoth's seq-cifar10): 5 tasks of 2
classes, 50 epochs a task, batch 32, random crop (padding 4) and horizontal flip for training,
per-channel mean/std normalisation; Split CIFAR-100 as 10 tasks of 10 classes (or 20 of 5 with
``--tasks 20``). The class order is a permutation drawn from the run seed. The recommended learning
rate depends on the method (the DER paper tunes it per method); 0.1 is SGD's value there. The
default backbone is the reduced ResNet-18 (:data:`DEFAULT_BACKBONE`); the DER paper's own settings,
full-width ResNet-18 included, are the ``der-scifar10`` preset.
"""

from __future__ import annotations

import dataclasses

import torch

from retain.benchmarks import builders
from retain.benchmarks.base import Benchmark
from retain.benchmarks.registry import register_benchmark
from retain.data.augment import RandomCropFlip
from retain.data.cifar import load_cifar10, load_cifar100
from retain.data.transforms import ToFloat

#: The backbone a run gets without --backbone: the reduced ResNet-18 (nf=20) that GEM introduced for
#: continual learning on CIFAR, not an MLP on flattened pixels. The DER paper's runs use the full
#: width (Mammoth's resnet18, nf=64): the der-scifar10 preset says so.
DEFAULT_BACKBONE = "resnet18-reduced"

# Per-channel statistics of the training sets (the values Mammoth and Avalanche normalise with).
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2615)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)


def normalise(mean: tuple[float, ...], std: tuple[float, ...]) -> ToFloat:
    """uint8 -> float in [0, 1] -> (x - mean) / std, per channel of an N x C x H x W batch."""
    return ToFloat(mean=torch.tensor(mean).reshape(-1, 1, 1), std=torch.tensor(std).reshape(-1, 1, 1))


def with_augmentation(bench: Benchmark, mean, std, *, seed: int, enabled: bool = True) -> Benchmark:
    """Attach the seeded crop-and-flip to every training experience; padding is black pixels."""
    if not enabled:
        return bench
    fill = -torch.tensor(mean) / torch.tensor(std)  # 0 in pixel space, after normalisation
    aug = RandomCropFlip(padding=4, flip_p=0.5, seed=10_000 + seed, fill=fill)
    exps = [dataclasses.replace(e, augment=aug) for e in bench.experiences]
    return dataclasses.replace(bench, experiences=exps, info={**bench.info, "augment": "crop4+hflip"})


def _split(name, arrays, *, tasks, seed, scenario, num_classes, mean, std, augment) -> Benchmark:
    bench = builders.split(name, arrays, tasks=tasks, seed=seed, scenario=scenario, to_float=normalise(mean, std),
                           num_classes=num_classes, shuffle_classes=True, flatten=False)
    return with_augmentation(bench, mean, std, seed=seed, enabled=augment)


@register_benchmark("split-cifar10", epochs=50, batch_size=32, lr=0.1, backbone=DEFAULT_BACKBONE)
def split_cifar10(*, tasks: int | None = None, seed: int = 0, scenario: str | None = None, data_dir=None,
                  augment: bool = True, verify: bool = True) -> Benchmark:
    """Split CIFAR-10: 5 tasks of 2 classes, seeded class order (class-IL or task-IL)."""
    return _split("split-cifar10", load_cifar10(data_dir, verify=verify), tasks=tasks or 5, seed=seed,
                  scenario=scenario, num_classes=10, mean=CIFAR10_MEAN, std=CIFAR10_STD, augment=augment)


@register_benchmark("split-cifar100", epochs=50, batch_size=32, lr=0.1, backbone=DEFAULT_BACKBONE)
def split_cifar100(*, tasks: int | None = None, seed: int = 0, scenario: str | None = None, data_dir=None,
                   augment: bool = True, verify: bool = True) -> Benchmark:
    """Split CIFAR-100: 10 tasks of 10 classes (--tasks 20: 20 of 5), seeded class order."""
    return _split("split-cifar100", load_cifar100(data_dir, verify=verify), tasks=tasks or 10, seed=seed,
                  scenario=scenario, num_classes=100, mean=CIFAR100_MEAN, std=CIFAR100_STD, augment=augment)
