"""Generic ways to make a stream from one labelled dataset: permuted, rotated, split by classes."""

from __future__ import annotations

import torch
from torch import Tensor

from retain.benchmarks.base import Benchmark, Experience, split_by_classes
from retain.data.transforms import Identity, Permute, Rotate, ToFloat
from retain.errors import ConfigError

Arrays = tuple[Tensor, Tensor, Tensor, Tensor]


def check_tasks(name: str, tasks: int, allowed: range | tuple[int, ...] | None = None) -> None:
    if not isinstance(tasks, int) or tasks < 1:
        raise ConfigError(f"{name}: --tasks must be a positive integer, got {tasks!r}")
    if allowed is not None and tasks not in allowed:
        raise ConfigError(f"{name}: --tasks must be one of {list(allowed)}, got {tasks}")


def _domain_scenario(name: str, scenario: str | None) -> str:
    scenario = scenario or "domain-il"
    if scenario not in ("domain-il", "task-il"):
        raise ConfigError(f"{name}: scenario must be domain-il or task-il, got {scenario!r}")
    return scenario


def _domain_stream(name, arrays: Arrays, transforms, scenario, image_shape, num_classes, info) -> Benchmark:
    """One experience per transform over the same data. Task-IL gives each task its own block of
    ``num_classes`` outputs (a multi-head classifier as one masked linear layer)."""
    train_x, train_y, test_x, test_y = arrays
    scenario = _domain_scenario(name, scenario)
    exps = []
    for t, tf in enumerate(transforms):
        off = t * num_classes if scenario == "task-il" else 0
        exps.append(Experience(
            task_id=t, origin=t, name=f"{name}/{t}", transform=tf,
            classes=tuple(range(off, off + num_classes)),
            train_x=train_x, train_y=train_y + off if off else train_y,
            test_x=test_x, test_y=test_y + off if off else test_y,
        ))
    total = num_classes * (len(exps) if scenario == "task-il" else 1)
    return Benchmark(name, exps, scenario, (int(torch.tensor(image_shape).prod()),), total, info)


def permuted(name: str, arrays: Arrays, *, tasks: int, seed: int, scenario: str | None,
             to_float: ToFloat, num_classes: int, fraction: float = 1.0) -> Benchmark:
    """Task 0 is the identity; each later task permutes a ``fraction`` of the pixels at random."""
    check_tasks(name, tasks)
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"{name}: permute fraction must be in [0, 1], got {fraction}")
    d = int(arrays[0][0].numel())
    g = torch.Generator().manual_seed(seed)
    transforms = []
    for t in range(tasks):
        perm = torch.arange(d)
        if t > 0:
            chosen = torch.randperm(d, generator=g)[: round(fraction * d)]
            perm[chosen] = chosen[torch.randperm(len(chosen), generator=g)]
        transforms.append(Permute(perm, to_float))
    info = {"permute_fraction": fraction}
    return _domain_stream(name, arrays, transforms, scenario, arrays[0].shape[1:], num_classes, info)


def rotated(name: str, arrays: Arrays, *, tasks: int, seed: int, scenario: str | None,
            to_float: ToFloat, num_classes: int, max_degrees: float = 180.0) -> Benchmark:
    """Each task rotates all images by a fixed angle drawn uniformly from [0, max_degrees)."""
    check_tasks(name, tasks)
    g = torch.Generator().manual_seed(seed)
    angles = (torch.rand(tasks, generator=g) * max_degrees).tolist()
    shape = (1, *arrays[0].shape[1:]) if arrays[0].dim() == 3 else tuple(arrays[0].shape[1:])
    transforms = [Rotate(a, shape, to_float) for a in angles]
    info = {"angles": [round(a, 3) for a in angles]}
    return _domain_stream(name, arrays, transforms, scenario, arrays[0].shape[1:], num_classes, info)


def parse_classes(text: str | None, num_classes: int, name: str) -> list[int] | None:
    """``"5-9"`` or ``"5,6,7,8,9"`` (or both: ``"0-2,7"``) -> the class ids, in that order."""
    if text is None:
        return None
    out: list[int] = []
    try:
        for part in str(text).split(","):
            lo, _, hi = part.strip().partition("-")
            out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    except ValueError:
        raise ConfigError(f"{name}: classes must be class ids like '5-9' or '0,2,4', got {text!r}") from None
    bad = [c for c in out if not 0 <= c < num_classes]
    if bad or not out or len(set(out)) != len(out):
        raise ConfigError(f"{name}: classes must be distinct ids in 0..{num_classes - 1}, got {text!r}")
    return out


def _first_per_class(x: Tensor, y: Tensor, n: int) -> tuple[Tensor, Tensor]:
    keep = torch.zeros(len(y), dtype=torch.bool)
    for c in y.unique():
        keep[torch.nonzero(y == c).flatten()[:n]] = True
    return x[keep], y[keep]


def split(name: str, arrays: Arrays, *, tasks: int, seed: int, scenario: str | None, to_float: ToFloat,
          num_classes: int, shuffle_classes: bool = False, flatten: bool = True,
          classes: list[int] | None = None, train_per_class: int | None = None) -> Benchmark:
    """Disjoint groups of classes, one group a task (Split MNIST: 5 tasks of 2 digits). ``classes``
    keeps only those classes (labels keep their ids, the label space stays ``num_classes``), e.g.
    the digits a pretrained backbone never saw; ``train_per_class`` keeps the first N training
    images of each class (in file order, the same for every seed), for a cheaper stream."""
    order = list(range(num_classes)) if classes is None else list(classes)
    check_tasks(name, tasks, tuple(k for k in range(1, len(order) + 1) if len(order) % k == 0))
    scenario = scenario or "class-il"
    if scenario not in ("class-il", "task-il"):
        raise ConfigError(f"{name}: scenario must be class-il or task-il, got {scenario!r}")
    if shuffle_classes:
        order = [order[i] for i in torch.randperm(len(order), generator=torch.Generator().manual_seed(seed)).tolist()]
    per = len(order) // tasks
    groups = [tuple(order[i * per:(i + 1) * per]) for i in range(tasks)]
    train = split_by_classes(arrays[0], arrays[1], groups)
    if train_per_class is not None:
        if not isinstance(train_per_class, int) or train_per_class < 1:
            raise ConfigError(f"{name}: train_per_class must be a positive integer, got {train_per_class!r}")
        train = [_first_per_class(x, y, train_per_class) for x, y in train]
    test = split_by_classes(arrays[2], arrays[3], groups)
    transform = Identity(to_float, flatten=flatten)
    exps = [
        Experience(task_id=t, origin=t, name=f"{name}/{t}", classes=groups[t], transform=transform,
                   train_x=train[t][0], train_y=train[t][1], test_x=test[t][0], test_y=test[t][1])
        for t in range(tasks)
    ]
    shape = (int(arrays[0][0].numel()),) if flatten else tuple(arrays[0].shape[1:])
    return Benchmark(name, exps, scenario, shape, num_classes, {"class_order": order})
