"""Benchmarks from a user's own labelled data: arrays or tensors, a torch Dataset, a Hugging Face dataset.

Every path ends in :func:`from_arrays`, which checks the data, keeps it in its storage dtype (uint8
images stay uint8 and become floats per batch, as in the built-in benchmarks; a memory-mapped
array stays on disk and is read per batch through :class:`~retain.data.mapped.MappedRows`) and
cuts it into tasks one of three ways:

- **by classes** (the default): ``tasks`` groups of classes in label order (sizes differ by at
  most one; ``shuffle_classes`` draws the order from ``seed``), or the groups of an explicit
  ``class_order``; scenario class-il or task-il.
- **by domain**: ``domains=(train_ids, test_ids)``, one id per sample; one task per distinct id
  (in sorted order) over one label space; domain-il, or task-il with a block of outputs per task.
- **an instance stream**: ``stream="instance"`` shuffles each class's samples by ``seed`` and
  deals them into ``tasks`` chunks, so every task holds every class; domain-il.

Inputs are ``N x D`` features, ``N x H x W`` single-channel images, or ``N x C x H x W`` /
``N x H x W x C`` images (C of 1, 3 or 4); uint8 is scaled to [0, 1], floats reach the model as
they are. Labels are integers of any values: they become 0..K-1 in sorted order
(``info["label_values"]`` keeps the originals when they differ), and ``class_order`` names the
original values.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from retain.benchmarks.base import Benchmark, Experience
from retain.benchmarks.builders import check_tasks
from retain.data.mapped import MappedRows, is_mapped
from retain.data.transforms import ToFloat
from retain.errors import ConfigError

_NUMPY_INPUTS = (np.uint8, np.float16, np.float32, np.float64)
_TORCH_INPUTS = (torch.uint8, torch.float16, torch.bfloat16, torch.float32, torch.float64)
_TORCH_LABELS = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
_CHANNELS = (1, 3, 4)
Storage = Tensor | MappedRows


class ToModel:
    """A storage batch as the float tensor the model sees: scaled, channels first."""

    def __init__(self, scale: float, layout: str):
        self.to_float, self.layout = ToFloat(scale=scale), layout

    def __call__(self, x: Tensor) -> Tensor:
        out = self.to_float(x)
        if self.layout == "hw":
            return out.unsqueeze(1)
        if self.layout == "hwc":
            return out.permute(0, 3, 1, 2).contiguous()
        return out


def _storage(what: str, x: Any) -> Storage:
    """``x`` as a CPU tensor (shared with a writable numpy array) or, when memory-mapped, MappedRows."""
    if isinstance(x, MappedRows):
        return x
    if isinstance(x, np.ndarray):
        if x.dtype not in _NUMPY_INPUTS:
            raise ConfigError(f"{what} must hold uint8 images or float features, got {x.dtype}")
        if is_mapped(x):
            return MappedRows(x)
        if not x.flags.writeable:
            x = x.copy()  # torch shares only writable memory
        return torch.from_numpy(x)
    if isinstance(x, Tensor):
        if x.dtype not in _TORCH_INPUTS:
            raise ConfigError(f"{what} must hold uint8 images or float features, got {x.dtype}")
        return x.detach().cpu()
    raise ConfigError(f"{what} must be a numpy array or a torch tensor, got {type(x).__name__}")


def _labels(what: str, y: Any, n: int, x_what: str) -> np.ndarray:
    if isinstance(y, Tensor):
        if y.dtype not in _TORCH_LABELS:
            raise ConfigError(f"{what} must hold integer labels, got {y.dtype}")
        y = y.detach().cpu().numpy()
    elif not isinstance(y, (np.ndarray, list, tuple)):
        raise ConfigError(f"{what} must be a numpy array, a tensor or a list of labels, got {type(y).__name__}")
    y = np.asarray(y)
    if y.ndim != 1:
        raise ConfigError(f"{what} must be one label per sample (1-D), got shape {tuple(y.shape)}")
    if y.dtype.kind not in "iu":
        raise ConfigError(f"{what} must hold integer labels, got {y.dtype}")
    if len(y) != n:
        raise ConfigError(f"{x_what} has {n} samples but {what} has {len(y)} labels")
    return y.astype(np.int64)


def _layout(what: str, shape: tuple[int, ...]) -> tuple[str, tuple[int, ...]]:
    """(layout, input shape the model sees) of an ``N x ...`` array."""
    s = tuple(int(v) for v in shape[1:])
    if len(s) == 1:
        return "flat", s
    if len(s) == 2:
        return "hw", (1, *s)
    if len(s) == 3 and s[0] in _CHANNELS:
        return "chw", s
    if len(s) == 3 and s[2] in _CHANNELS:
        return "hwc", (s[2], s[0], s[1])
    if len(s) == 3:
        raise ConfigError(f"{what} has shape {tuple(shape)}: neither its axis 1 nor its last axis holds 1, 3 or 4 "
                          "channels (expected N x C x H x W or N x H x W x C)")
    raise ConfigError(f"{what} must be N x D features, N x H x W or N x C x H x W images (2 to 4 axes), "
                      f"got {len(shape)} axes, shape {tuple(shape)}")


def _take(x: Storage, rows: np.ndarray) -> Storage:
    """The samples ``rows`` of ``x``: a copy in memory, a lazy subset on disk."""
    return x.rows(rows) if isinstance(x, MappedRows) else x[torch.from_numpy(rows)]


def _scenario(name: str, scenario: str | None, allowed: tuple[str, ...], split: str) -> str:
    scenario = scenario or allowed[0]
    if scenario not in allowed:
        raise ConfigError(f"{name}: a split by {split} runs as {' or '.join(allowed)}, got scenario {scenario!r}")
    return scenario


def _few(values: Sequence, limit: int = 12) -> str:
    items = [str(v) for v in values]
    return ", ".join(items[:limit]) + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def _class_groups(name: str, values: np.ndarray, tasks: int | None, class_order: Any,
                  shuffle: bool, seed: int) -> list[list[int]]:
    """Groups of label ids (0..K-1), one per task."""
    k = len(values)
    if class_order is None:
        order = (torch.randperm(k, generator=torch.Generator().manual_seed(seed)).tolist() if shuffle
                 else list(range(k)))
    else:
        if shuffle:
            raise ConfigError(f"{name}: class_order and shuffle_classes do not mix")
        groups = _ordered_groups(name, values, class_order, tasks)
        if isinstance(groups[0], list):
            return groups
        order = groups
    tasks = -(-k // 2) if tasks is None else tasks  # default: two classes a task
    check_tasks(name, tasks)
    if tasks > k:
        raise ConfigError(f"{name}: tasks ({tasks}) must not exceed the number of classes ({k})")
    return [[int(c) for c in g] for g in np.array_split(np.asarray(order), tasks)]


def _ordered_groups(name: str, values: np.ndarray, class_order: Any, tasks: int | None) -> list:
    """``class_order`` as label ids: a flat list, or one list per task when it was nested."""
    if not isinstance(class_order, (list, tuple, np.ndarray)) or len(class_order) == 0:
        raise ConfigError(f"{name}: class_order must be a non-empty list of labels or of lists of labels, "
                          f"got {class_order!r}")
    nested = [isinstance(g, (list, tuple, np.ndarray)) for g in class_order]
    if any(nested) and not all(nested):
        raise ConfigError(f"{name}: class_order must be all labels or all lists of labels, got {class_order!r}")
    chunks = [list(g) for g in class_order] if all(nested) else [list(class_order)]
    flat = [c for g in chunks for c in g]
    bad = [c for c in flat if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer))]
    if bad or any(len(g) == 0 for g in chunks):
        raise ConfigError(f"{name}: class_order must list integer labels (or non-empty lists of them), "
                          f"got {bad[0]!r}" if bad else f"{name}: class_order has an empty task")
    lookup = {int(v): i for i, v in enumerate(values.tolist())}
    missing = [int(c) for c in flat if int(c) not in lookup]
    if missing:
        raise ConfigError(f"{name}: class_order names class(es) {_few(missing)} that the training labels lack "
                          f"(they hold {_few(values.tolist())})")
    seen, dups = set(), []
    for c in flat:
        dups += [int(c)] if int(c) in seen else []
        seen.add(int(c))
    if dups:
        raise ConfigError(f"{name}: class_order lists class(es) {_few(sorted(set(dups)))} more than once")
    left = sorted(set(lookup) - seen)
    if left:
        raise ConfigError(f"{name}: class_order leaves out class(es) {_few(left)}; list every class once")
    if not all(nested):
        return [lookup[int(c)] for c in flat]
    if tasks is not None and tasks != len(chunks):
        raise ConfigError(f"{name}: tasks ({tasks}) differs from the {len(chunks)} groups of class_order")
    return [[lookup[int(c)] for c in g] for g in chunks]


def _rows_by_class(y: np.ndarray, k: int) -> list[np.ndarray]:
    order = np.argsort(y, kind="stable")
    return np.split(order, np.cumsum(np.bincount(y, minlength=k))[:-1])


def _by_class(name, data, values, *, tasks, class_order, shuffle, seed, scenario):
    xtr, ytr, xte, yte, tf = data
    scenario = _scenario(name, scenario, ("class-il", "task-il"), "classes")
    groups = _class_groups(name, values, tasks, class_order, shuffle, seed)
    exps = []
    for t, g in enumerate(groups):
        tr, te = np.flatnonzero(np.isin(ytr, g)), np.flatnonzero(np.isin(yte, g))
        if len(te) == 0:
            raise ConfigError(f"{name}: the test data has no sample of task {t + 1}'s classes "
                              f"{_few(values[g].tolist())}")
        exps.append(_experience(name, t, tuple(g), data, tr, te))
    info = {"class_groups": [values[g].tolist() for g in groups]}
    return exps, scenario, len(values), info


def _domain_ids(name: str, domains: Any, n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    if not (isinstance(domains, (tuple, list)) and len(domains) == 2):
        raise ConfigError(f"{name}: domains must be a pair (train domain ids, test domain ids), "
                          f"got {type(domains).__name__}")
    out = []
    for what, ids, n in (("train", domains[0], n_train), ("test", domains[1], n_test)):
        ids = ids.detach().cpu().numpy() if isinstance(ids, Tensor) else np.asarray(ids)
        if ids.ndim != 1 or len(ids) != n:
            raise ConfigError(f"{name}: the {what} domain ids must be one per {what} sample ({n}), "
                              f"got shape {tuple(ids.shape)}")
        if ids.dtype.kind not in "iuU":
            raise ConfigError(f"{name}: domain ids must be integers or strings, got {ids.dtype}")
        out.append(ids)
    return out[0], out[1]


def _by_domain(name, data, values, *, domains, tasks, class_order, scenario):
    xtr, ytr, xte, yte, tf = data
    if class_order is not None:
        raise ConfigError(f"{name}: class_order is for a split by classes; it does not mix with domains")
    dtr, dte = _domain_ids(name, domains, len(ytr), len(yte))
    names, test_names = np.unique(dtr), np.unique(dte)
    if names.tolist() != test_names.tolist():
        raise ConfigError(f"{name}: the test domains ({_few(test_names.tolist())}) differ from the train "
                          f"domains ({_few(names.tolist())})")
    if tasks is not None and tasks != len(names):
        raise ConfigError(f"{name}: tasks ({tasks}) must equal the number of domains ({len(names)})")
    scenario = _scenario(name, scenario, ("domain-il", "task-il"), "domain")
    k, exps = len(values), []
    for t, d in enumerate(names):
        off = t * k if scenario == "task-il" else 0
        exps.append(_experience(name, t, tuple(range(off, off + k)), data, np.flatnonzero(dtr == d),
                                np.flatnonzero(dte == d), offset=off))
    return exps, scenario, k * (len(names) if scenario == "task-il" else 1), {"domains": names.tolist()}


def _deal(y: np.ndarray, k: int, tasks: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Each class's rows shuffled and dealt into ``tasks`` chunks (the class's first chunk rotates,
    so chunk sizes differ by at most the number of classes)."""
    chunks: list[list[np.ndarray]] = [[] for _ in range(tasks)]
    for c, rows in enumerate(_rows_by_class(y, k)):
        for j, part in enumerate(np.array_split(rng.permutation(rows), tasks)):
            chunks[(j + c) % tasks].append(part)
    return [np.sort(np.concatenate(parts)) for parts in chunks]


def _instance_stream(name, data, values, *, tasks, class_order, seed, scenario):
    xtr, ytr, xte, yte, tf = data
    if class_order is not None:
        raise ConfigError(f"{name}: class_order is for a split by classes; an instance stream keeps every class")
    tasks = 5 if tasks is None else tasks
    check_tasks(name, tasks)
    scenario = _scenario(name, scenario, ("domain-il",), "instances")
    k = len(values)
    counts = np.bincount(ytr, minlength=k)
    if counts.min() < tasks:
        c = int(counts.argmin())
        raise ConfigError(f"{name}: class {values[c]} has {counts[c]} training samples, fewer than the {tasks} "
                          "tasks of an instance stream")
    if len(yte) < tasks:
        raise ConfigError(f"{name}: the test data has {len(yte)} samples, fewer than the {tasks} tasks")
    rng = np.random.default_rng(seed)
    train, test = _deal(ytr, k, tasks, rng), _deal(yte, k, tasks, rng)
    exps = [_experience(name, t, tuple(range(k)), data, train[t], test[t]) for t in range(tasks)]
    return exps, scenario, k, {"stream": "instance"}


def _experience(name, t, classes, data, tr, te, offset: int = 0) -> Experience:
    xtr, ytr, xte, yte, tf = data
    return Experience(task_id=t, origin=t, name=f"{name}/{t}", classes=classes, transform=tf,
                      train_x=_take(xtr, tr), train_y=torch.from_numpy(ytr[tr] + offset),
                      test_x=_take(xte, te), test_y=torch.from_numpy(yte[te] + offset))


def from_arrays(train_x: Any, train_y: Any, test_x: Any, test_y: Any, *, tasks: int | None = None,
                class_order: Sequence | None = None, scenario: str | None = None, domains: Any = None,
                stream: str | None = None, seed: int = 0, shuffle_classes: bool = False, name: str = "custom",
                info: dict | None = None) -> Benchmark:
    """A benchmark from labelled arrays (numpy, np.memmap, torch tensors); see the module docstring.

    Args:
        train_x, test_x: inputs, uint8 images or float features; a memory-mapped numpy array
            stays on disk and is read a batch at a time.
        train_y, test_y: integer labels, one per sample.
        tasks: number of tasks (default: two classes a task; 5 for an instance stream; the number of
            domains with ``domains``).
        class_order: labels in the order they arrive, cut into ``tasks`` groups, or a list of
            lists (one per task).
        scenario: class-il (default) or task-il for a class split; domain-il (default) or task-il
            with ``domains``; domain-il for an instance stream.
        domains: (train domain ids, test domain ids), one per sample: one task per domain.
        stream: "instance" for an instance-incremental stream.
        seed: draws the instance stream's chunks and, with ``shuffle_classes``, the class order.
        name: the benchmark's name (experiences are ``name/t``).
        info: extra entries for ``Benchmark.info`` (e.g. class names).
    """
    xtr, xte = _storage("train_x", train_x), _storage("test_x", test_x)
    ytr_raw, yte_raw = _labels("train_y", train_y, len(xtr), "train_x"), _labels("test_y", test_y, len(xte), "test_x")
    if len(xtr) == 0 or len(xte) == 0:
        raise ConfigError(f"{name}: {'train_x' if len(xtr) == 0 else 'test_x'} has no samples")
    layout, input_shape = _layout("train_x", tuple(xtr.shape))
    if tuple(xte.shape[1:]) != tuple(xtr.shape[1:]):
        raise ConfigError(f"test_x samples have shape {tuple(xte.shape[1:])}, train_x samples {tuple(xtr.shape[1:])}")
    if (xtr.dtype == torch.uint8) != (xte.dtype == torch.uint8):
        raise ConfigError(f"train_x is {xtr.dtype} but test_x is {xte.dtype}; both must be uint8 or both float")
    values = np.unique(ytr_raw)
    unseen = np.setdiff1d(np.unique(yte_raw), values)
    if len(unseen):
        raise ConfigError(f"{name}: test_y has label(s) {_few(unseen.tolist())} that train_y lacks")
    tf = ToModel(1.0 / 255.0 if xtr.dtype == torch.uint8 else 1.0, layout)
    data = (xtr, np.searchsorted(values, ytr_raw), xte, np.searchsorted(values, yte_raw), tf)
    if domains is not None and stream is not None:
        raise ConfigError(f"{name}: domains and stream do not mix; choose one way to cut the data")
    if stream is not None and stream != "instance":
        raise ConfigError(f"{name}: stream must be 'instance' (or left out), got {stream!r}")
    if domains is not None:
        split = "domain"
        exps, scenario, num_classes, extra = _by_domain(name, data, values, domains=domains, tasks=tasks,
                                                        class_order=class_order, scenario=scenario)
    elif stream is not None:
        split = "instance"
        exps, scenario, num_classes, extra = _instance_stream(name, data, values, tasks=tasks, seed=seed,
                                                              class_order=class_order, scenario=scenario)
    else:
        split = "class"
        exps, scenario, num_classes, extra = _by_class(name, data, values, tasks=tasks, class_order=class_order,
                                                       shuffle=shuffle_classes, seed=seed, scenario=scenario)
    meta = {"split": split, "storage": "memory-mapped" if isinstance(xtr, MappedRows) else "memory", **extra}
    if values.tolist() != list(range(len(values))):
        meta["label_values"] = values.tolist()
    return Benchmark(name, exps, scenario, input_shape, num_classes, {**meta, **(info or {})})


# --- torch Datasets and Hugging Face datasets (read by retain.data.materialise) ---------------


def from_dataset(train_ds: Any, test_ds: Any, *, num_workers: int = 0, chunk_size: int = 256,
                 cache_dir: str | os.PathLike | None = None, **split: Any) -> Benchmark:
    """A benchmark from two map-style ``torch.utils.data.Dataset`` objects whose items are
    ``(input, label)``: inputs as tensors, arrays or PIL images, all of one shape; uint8 stays
    uint8 and float becomes float32.

    The data is read once, ``chunk_size`` items at a time through a DataLoader with
    ``num_workers`` worker processes (whatever decoding or transforms the Dataset does runs
    there). With ``cache_dir`` the inputs are written to ``cache_dir/NAME-train.npy`` and
    ``NAME-test.npy`` (rewritten on every call) and used memory-mapped, so a data set larger
    than memory never is in memory. ``split`` takes :func:`from_arrays`'s keywords."""
    from retain.data.materialise import materialise

    name = split.get("name", "custom")
    cache = Path(cache_dir) if cache_dir is not None else None
    arrays = [materialise(f"{name} {part} dataset", ds, num_workers=num_workers, chunk_size=chunk_size,
                           cache=cache / f"{name}-{part}.npy" if cache else None)
              for part, ds in (("train", train_ds), ("test", test_ds))]
    (train_x, train_y), (test_x, test_y) = arrays
    return from_arrays(train_x, train_y, test_x, test_y, **split)


def from_hf(dataset_dict: Any, *, image_key: str = "image", label_key: str = "label", train_split: str = "train",
            test_split: str = "test", size: int | str | None = None, mode: str | None = None,
            num_workers: int = 0, chunk_size: int = 256, cache_dir: str | os.PathLike | None = None,
            **split: Any) -> Benchmark:
    """A benchmark from a Hugging Face ``datasets.DatasetDict`` (or any mapping of split name to
    ``datasets.Dataset``), its inputs in column ``image_key`` and integer labels in ``label_key``.

    Image columns are decoded to one size and mode (``size``/``mode`` as for ``folder:PATH``;
    default: the first training image's size, RGB or L after it); other columns are taken as
    arrays of numbers. The class names of a ``ClassLabel`` column go to ``info["class_names"]``.
    Needs the ``datasets`` package (``pip install 'retain[hf]'``)."""
    try:
        import datasets
    except ImportError:
        raise ConfigError("from_hf needs the Hugging Face datasets package; install it with "
                          "pip install 'retain[hf]' (or pip install datasets)") from None
    from retain.data.folder import image_geometry
    from retain.data.materialise import HFPairs

    parts = []
    for part in (train_split, test_split):
        try:
            ds = dataset_dict[part]
        except (KeyError, TypeError):
            known = list(dataset_dict.keys()) if hasattr(dataset_dict, "keys") else []
            raise ConfigError(f"from_hf: no split {part!r} in the dataset (it has {_few(known) or 'none'})") from None
        missing = [k for k in (image_key, label_key) if k not in ds.column_names]
        if missing:
            raise ConfigError(f"from_hf: the {part} split has no column {missing[0]!r} "
                              f"(columns: {', '.join(ds.column_names)}); set image_key / label_key")
        parts.append(ds)
    train, test = parts
    geometry = None
    if isinstance(train.features[image_key], datasets.Image):
        geometry = image_geometry(train[0][image_key], size, mode, where=f"from_hf {train_split} row 0")
    names = getattr(train.features[label_key], "names", None)
    info = {"source": "huggingface", **({"class_names": list(names)} if names else {}), **split.pop("info", {})}
    return from_dataset(HFPairs(train, image_key, label_key, geometry), HFPairs(test, image_key, label_key, geometry),
                        num_workers=num_workers, chunk_size=chunk_size, cache_dir=cache_dir, info=info, **split)
