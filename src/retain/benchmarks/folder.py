"""``--benchmark folder:PATH``: a folder tree of images by class as a benchmark.

The reader is :mod:`retain.data.folder` (layouts, resizing, the decoded-image cache); the split
into tasks is :func:`retain.benchmarks.custom.from_arrays`. A resolver registers each
``folder:PATH`` name the first time it is asked for, with the training defaults below, so the
run key holds the name with its path, exactly as given.
"""

from __future__ import annotations

from typing import Any

import torch

from retain.benchmarks.base import Benchmark
from retain.benchmarks.custom import from_arrays
from retain.benchmarks.registry import BENCHMARKS, register_benchmark
from retain.data import folder as reader
from retain.data.mapped import MappedRows
from retain.errors import ConfigError

PREFIX = "folder:"
#: Training defaults for a user's folder (small data sets, an MLP or a small CNN): a few passes
#: over each task, small batches.
TRAINING_DEFAULTS = {"epochs": 5, "batch_size": 32, "lr": 0.05}


def parse_class_order(text: str | None, names: tuple[str, ...], where: str) -> list | None:
    """``"cat,dog;bird,fish"`` -> label ids per task (``;`` between tasks); without ``;``, a flat
    order that ``tasks`` cuts into groups. Names are class folder names."""
    if text is None:
        return None
    lookup = {n: i for i, n in enumerate(names)}
    groups = [[c.strip() for c in g.split(",") if c.strip()] for g in str(text).split(";")]
    unknown = [c for g in groups for c in g if c not in lookup]
    if unknown:
        raise ConfigError(f"{where}: class_order names {unknown[0]!r}, not a class folder (classes: "
                          f"{', '.join(names[:20])}{', ...' if len(names) > 20 else ''})")
    ids = [[lookup[c] for c in g] for g in groups]
    return ids if len(ids) > 1 else ids[0]


def folder_benchmark(root: str, *, name: str | None = None, tasks: int | None = None, seed: int = 0,
                     scenario: str | None = None, size: int | str | None = None, mode: str | None = None,
                     test_fraction: float | None = None, class_order: str | None = None,
                     shuffle_classes: bool = False, stream: str | None = None, cache: bool = True) -> Benchmark:
    """The images under ``root`` split into tasks by :func:`from_arrays` (see the factory for the options)."""
    name = name or f"{PREFIX}{root}"
    listing = reader.list_images(root, test_fraction=test_fraction)
    size, mode = reader.geometry_of(listing, size, mode)
    images, stored = reader.decode(listing, size, mode, cache=cache)
    if cache:
        x = MappedRows(images)
        train_x, test_x = x.rows(listing.train_rows), x.rows(listing.test_rows)
    else:
        x = torch.from_numpy(images)
        train_x, test_x = x[torch.from_numpy(listing.train_rows)], x[torch.from_numpy(listing.test_rows)]
    info = {"source": "folder", "root": str(listing.root), "class_names": list(listing.class_names),
            "folder_split": listing.split, "size": f"{size[0]}x{size[1]}", "mode": mode, "stored": stored}
    if listing.split == "held-out":
        info["test_fraction"] = 0.2 if test_fraction is None else test_fraction
    return from_arrays(train_x, listing.labels[listing.train_rows], test_x, listing.labels[listing.test_rows],
                       tasks=tasks, class_order=parse_class_order(class_order, listing.class_names, name),
                       scenario=scenario, stream=stream, seed=seed, shuffle_classes=shuffle_classes,
                       name=name, info=info)


def _factory(name: str):
    root = name[len(PREFIX):]

    def factory(*, tasks: int | None = None, seed: int = 0, scenario: str | None = None, data_dir: Any = None,
                size: int | str | None = None, mode: str | None = None, test_fraction: float | None = None,
                class_order: str | None = None, shuffle_classes: bool = False, stream: str | None = None,
                cache: bool = True) -> Benchmark:
        """Images by class in a folder (PATH/train/<class>/, PATH/test/<class>/ or PATH/<class>/).

        Options: size (32 or 40x30; default the first image's), mode (RGB or L; default after the
        first image), test_fraction (held out when there is no train/test split; default 0.2),
        class_order ("a,b,c,d" cut into tasks, or "a,b;c,d" one group a task), shuffle_classes,
        stream ("instance": every task holds every class), cache (decode once to a memory-mapped
        file; default true). ``data_dir`` is not used: the path is in the name."""
        if not root:
            raise ConfigError("folder: needs a path, e.g. --benchmark folder:data/my-images")
        return folder_benchmark(root, name=name, tasks=tasks, seed=seed, scenario=scenario, size=size, mode=mode,
                                test_fraction=test_fraction, class_order=class_order,
                                shuffle_classes=shuffle_classes, stream=stream, cache=cache)

    return factory


def resolve(name: str) -> bool:
    """Register ``folder:PATH`` names on demand (a :meth:`Registry.add_resolver` resolver)."""
    if not name.startswith(PREFIX):
        return False
    register_benchmark(name, **TRAINING_DEFAULTS)(_factory(name))
    return True


BENCHMARKS.add_resolver(resolve, owns=lambda name: name.startswith(PREFIX),
                        what=f"{PREFIX}PATH names a folder of images")
