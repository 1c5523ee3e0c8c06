"""CORe50 benchmarks (Lomonaco & Maltoni, CoRL 2017): NI and NC, with the official batch orders.

``core50-ni`` (new instances): 8 experiences, each one training session of all 50 objects, in
the order of the chosen run; domain-IL over 50 objects (or 10 categories), every experience
evaluated on the same test set (sessions 3, 7, 10), so the columns of a row are equal.
``core50-nc`` (new classes): 9 experiences, 10 objects then 5 per experience; class-IL (or
task-IL), each experience tested on its own objects from the test sessions.

Images are 128 x 128 (``image_size=128``, needs about 8 GB of memory for the whole set) or
box-averaged to 32 or 64 in memory for CPU runs. Frames are 20 per second, so neighbours are near
duplicates: ``test_every=k`` keeps every k-th test frame to make evaluation k times cheaper.
Training defaults (1 epoch, batch 64, lr 0.01) are CPU-friendly settings, not a paper's protocol.
"""

from __future__ import annotations

import numpy as np
import torch

from retain.benchmarks.base import Benchmark, Experience
from retain.benchmarks.cifar import normalise, with_augmentation
from retain.benchmarks.registry import register_benchmark
from retain.data.core50 import BATCHES, find_core50, load_core50
from retain.data.transforms import Identity
from retain.errors import ConfigError

# ImageNet statistics: CORe50 frames are natural photographs and its baselines start from ImageNet models.
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _check(name: str, tasks, scenario, allowed: tuple[str, ...], run: int, test_every: int) -> str:
    kind = name.split("-")[1]
    if tasks not in (None, BATCHES[kind]):
        raise ConfigError(f"{name}: has {BATCHES[kind]} experiences (the official batches), got --tasks {tasks}")
    scenario = scenario or allowed[0]
    if scenario not in allowed:
        raise ConfigError(f"{name}: scenario must be one of {list(allowed)}, got {scenario!r}")
    if not isinstance(run, int) or not 0 <= run <= 9:
        raise ConfigError(f"{name}: run must be an integer 0..9 (the 10 official orders), got {run!r}")
    if not isinstance(test_every, int) or test_every < 1:
        raise ConfigError(f"{name}: test_every must be a positive integer, got {test_every!r}")
    return scenario


def _load(name, data_dir, run, image_size, verify):
    images, _, batches = load_core50(str(find_core50(data_dir).resolve()), name.split("-")[1], run, image_size,
                                     verify)
    return images, batches


def _finish(name, exps, scenario, image_size, num_classes, info, seed, augment) -> Benchmark:
    bench = Benchmark(name, exps, scenario, (3, image_size, image_size), num_classes, info)
    return with_augmentation(bench, MEAN, STD, seed=seed, enabled=augment)


@register_benchmark("core50-ni", epochs=1, batch_size=64, lr=0.01)
def core50_ni(*, tasks: int | None = None, seed: int = 0, scenario: str | None = None, data_dir=None, run: int = 0,
              image_size: int = 32, labels: str = "object", test_every: int = 1, augment: bool = False,
              verify: bool = True) -> Benchmark:
    """CORe50 NI: 8 sessions as experiences, 50 objects (or 10 categories), domain-IL."""
    scenario = _check("core50-ni", tasks, scenario, ("domain-il",), run, test_every)
    if labels not in ("object", "category"):
        raise ConfigError(f"core50-ni: labels must be 'object' (50) or 'category' (10), got {labels!r}")
    images, batches = _load("core50-ni", data_dir, run, image_size, verify)
    div = 5 if labels == "category" else 1  # objects o1..o5 are category 0, and so on
    num_classes = 50 // div
    test_idx, test_y = (torch.from_numpy(a[::test_every]) for a in batches[-1])
    test_x, test_y = images[test_idx], test_y // div
    transform = Identity(normalise(MEAN, STD))
    exps = []
    for t, (idx, y) in enumerate(batches[:-1]):
        exps.append(Experience(task_id=t, origin=t, name=f"core50-ni/{t}", classes=tuple(range(num_classes)),
                               train_x=images[torch.from_numpy(idx)], train_y=torch.from_numpy(y // div),
                               test_x=test_x, test_y=test_y, transform=transform))
    return _finish("core50-ni", exps, scenario, image_size, num_classes,
                   {"run": run, "labels": labels, "test_every": test_every}, seed, augment)


@register_benchmark("core50-nc", epochs=1, batch_size=64, lr=0.01)
def core50_nc(*, tasks: int | None = None, seed: int = 0, scenario: str | None = None, data_dir=None, run: int = 0,
              image_size: int = 32, test_every: int = 1, augment: bool = False, verify: bool = True) -> Benchmark:
    """CORe50 NC: 9 experiences of new objects (10, then 5 each), class-IL or task-IL."""
    scenario = _check("core50-nc", tasks, scenario, ("class-il", "task-il"), run, test_every)
    images, batches = _load("core50-nc", data_dir, run, image_size, verify)
    test_idx, test_y = batches[-1][0][::test_every], batches[-1][1][::test_every]
    transform = Identity(normalise(MEAN, STD))
    exps, order = [], []
    for t, (idx, y) in enumerate(batches[:-1]):
        classes = tuple(int(c) for c in np.unique(y))
        order += classes
        keep = np.isin(test_y, classes)
        exps.append(Experience(task_id=t, origin=t, name=f"core50-nc/{t}", classes=classes,
                               train_x=images[torch.from_numpy(idx)], train_y=torch.from_numpy(y),
                               test_x=images[torch.from_numpy(test_idx[keep])],
                               test_y=torch.from_numpy(test_y[keep]), transform=transform))
    return _finish("core50-nc", exps, scenario, image_size, 50, {"run": run, "class_order": order,
                                                                  "test_every": test_every}, seed, augment)
