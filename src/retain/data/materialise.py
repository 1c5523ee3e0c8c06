"""Reading a torch Dataset (or a Hugging Face split) once into arrays: in memory, or into a .npy
file used memory-mapped. Used by :func:`retain.benchmarks.custom.from_dataset` and ``from_hf``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from retain.data.folder import image_array
from retain.errors import ConfigError

_TORCH_LABELS = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _sample_array(x: Any) -> Any:
    if isinstance(x, Tensor):
        return (x.float() if x.dtype == torch.bfloat16 else x).detach().cpu().numpy()
    if hasattr(x, "__array_interface__") or isinstance(x, (list, tuple, float, int)):
        return np.asarray(x)  # PIL images, lists of numbers
    return x


def _as_numpy(items: list) -> list:
    """DataLoader collate: each (x, y) with x as a numpy array; checked in the main process, so a
    bad sample gives one clear error there rather than a worker's traceback."""
    return [(_sample_array(it[0]), it[1]) if isinstance(it, (tuple, list)) and len(it) == 2 else it
            for it in items]


def _label_of(what: str, i: int, y: Any) -> int:
    if isinstance(y, Tensor) and y.numel() == 1 and y.dtype in _TORCH_LABELS:
        return int(y)
    if isinstance(y, (int, np.integer)) and not isinstance(y, (bool, np.bool_)):
        return int(y)
    raise ConfigError(f"{what}: sample {i} has label {y!r}; labels must be integers")


def materialise(what: str, ds: Any, *, num_workers: int, chunk_size: int,
                 cache: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """All of ``ds`` as (inputs N x ..., int64 labels), read ``chunk_size`` samples at a time through a
    DataLoader; with ``cache`` the inputs go to that .npy file (written under a temporary name,
    renamed when complete) and come back memory-mapped."""
    from torch.utils.data import DataLoader

    try:
        n = len(ds)
    except TypeError:
        raise ConfigError(f"{what}: needs a map-style Dataset with len(), got {type(ds).__name__}") from None
    if n == 0:
        raise ConfigError(f"{what}: the dataset is empty")
    if not isinstance(num_workers, int) or num_workers < 0 or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ConfigError(f"{what}: num_workers must be >= 0 and chunk_size >= 1, got {num_workers}, {chunk_size}")
    loader = DataLoader(ds, batch_size=chunk_size, shuffle=False, num_workers=num_workers, collate_fn=_as_numpy)
    out, labels, pos = None, np.empty(n, dtype=np.int64), 0
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp") if cache else None
    try:
        for items in loader:
            for j, item in enumerate(items):
                if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], np.ndarray)):
                    raise ConfigError(f"{what}: sample {pos + j} is not an (input, label) pair of an array or tensor "
                                      f"and an integer, got {type(item).__name__}")
            if out is None:
                out = _allocate(what, items[0][0], n, tmp)
            for j, (x, y) in enumerate(items):
                if x.shape != out.shape[1:]:
                    raise ConfigError(f"{what}: sample {pos + j} has shape {x.shape}, sample 0 {out.shape[1:]}; "
                                      "every input must have one shape")
                out[pos + j] = x
                labels[pos + j] = _label_of(what, pos + j, y)
            pos += len(items)
        if tmp is None:
            return out, labels
        out.flush()
        del out
        os.replace(tmp, cache)
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return np.load(cache, mmap_mode="r"), labels


def _allocate(what: str, first: np.ndarray, n: int, path: Path | None) -> np.ndarray:
    if first.dtype == np.uint8:
        dtype = np.uint8
    elif first.dtype.kind == "f":
        dtype = np.float32
    else:
        raise ConfigError(f"{what}: inputs must be uint8 images or float features, got {first.dtype}")
    if path is None:
        return np.empty((n, *first.shape), dtype=dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(n, *first.shape))


class HFPairs:
    """A Hugging Face dataset split as a map-style Dataset of (input, label); images are decoded to
    one size and mode (``geometry``) as C x H x W uint8."""

    def __init__(self, ds: Any, image_key: str, label_key: str, geometry: tuple | None):
        self.ds, self.image_key, self.label_key, self.geometry = ds, image_key, label_key, geometry

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        row = self.ds[int(i)]
        x = row[self.image_key]
        if self.geometry is not None and hasattr(x, "convert"):
            x = image_array(x, *self.geometry, where=f"row {i}")
        return x, row[self.label_key]
