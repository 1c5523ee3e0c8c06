"""Reader for the "python version" of CIFAR-10 and CIFAR-100 (Krizhevsky 2009,
https://www.cs.toronto.edu/~kriz/cifar.html).

Layout: ``cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta`` and
``cifar-100-python/train, test, meta``. Each batch is a pickled dict (written by Python 2, so its
keys arrive as ``str`` or ``bytes``) with ``data``: N x 3072 uint8, rows laid out as the 1024 red,
then green, then blue values of a 32 x 32 image, and ``labels`` (CIFAR-10) or ``fine_labels`` and
``coarse_labels`` (CIFAR-100). Images come back as N x 3 x 32 x 32 uint8 tensors.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from retain.data.safe_pickle import safe_loads
from retain.errors import DataError

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR100_FOLDER = "cifar-100-python"
#: MD5 of the files inside the official archives (the published values torchvision also checks).
CIFAR10_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
CIFAR100_MD5 = {
    "train": "16019d7e3df5f24257cddd939b257f8d",
    "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    "meta": "7973b15100ade9c7d40fb424638fde48",
}

Arrays = tuple[Tensor, Tensor, Tensor, Tensor]


def find_folder(data_dir: Path | str | None, folder: str) -> Path:
    """``data_dir/folder``, or ``data_dir`` itself when it already is that folder."""
    if data_dir is None:
        raise DataError(f"{folder} needs a data directory: pass --data-dir or set RETAIN_DATA")
    root = Path(data_dir)
    for candidate in (root / folder, root):
        if candidate.name == folder and candidate.is_dir():
            return candidate
    raise DataError(f"{root}: folder {folder}/ not found (run `retain data download "
                    f"{'cifar100' if '100' in folder else 'cifar10'} --data-dir {root}` or unpack the official "
                    "archive there)")


def _text_keys(d: dict, source: str) -> dict:
    if not isinstance(d, dict):
        raise DataError(f"{source}: expected a pickled dict, got {type(d).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in d.items()}


def read_batch(path: Path, label_key: str, *, md5: str | None = None) -> tuple[np.ndarray, dict]:
    """One batch file: (images N x 3 x 32 x 32 uint8, the dict with labels as int64 arrays)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if md5 is not None and hashlib.md5(raw).hexdigest() != md5:
        raise DataError(f"{path}: checksum mismatch (expected md5 {md5}); the file is corrupt or not the "
                        "official one (verify=False skips this check for re-packed files)")
    d = _text_keys(safe_loads(raw, str(path)), str(path))
    for key in ("data", label_key):
        if key not in d:
            raise DataError(f"{path}: key {key!r} missing (keys: {sorted(d)})")
    data = np.asarray(d["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: 'data' must be N x 3072 uint8, got {data.shape} {data.dtype}")
    labels = {}
    for key in ("labels", "fine_labels", "coarse_labels"):
        if key in d:
            labels[key] = np.asarray(d[key], dtype=np.int64).reshape(-1)
            if labels[key].shape[0] != data.shape[0]:
                raise DataError(f"{path}: {data.shape[0]} images but {labels[key].shape[0]} {key}")
    return data.reshape(-1, 3, 32, 32), labels


def _join(parts: list[tuple[np.ndarray, dict]], key: str) -> tuple[Tensor, Tensor]:
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1][key] for p in parts])
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)


def _check_range(y: Tensor, n: int, source: str) -> None:
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= n):
        raise DataError(f"{source}: labels must lie in [0, {n}), got [{int(y.min())}, {int(y.max())}]")


@lru_cache(maxsize=2)
def _cifar10(folder: str, verify: bool) -> Arrays:
    root = Path(folder)
    md5 = lambda n: CIFAR10_MD5[n] if verify else None
    train = [read_batch(root / f"data_batch_{i}", "labels", md5=md5(f"data_batch_{i}")) for i in range(1, 6)]
    test = [read_batch(root / "test_batch", "labels", md5=md5("test_batch"))]
    out = (*_join(train, "labels"), *_join(test, "labels"))
    _check_range(out[1], 10, str(root))
    _check_range(out[3], 10, str(root))
    return out


@lru_cache(maxsize=2)
def _cifar100(folder: str, label: str, verify: bool) -> Arrays:
    root = Path(folder)
    key = f"{label}_labels"
    md5 = lambda n: CIFAR100_MD5[n] if verify else None
    out = (*_join([read_batch(root / "train", key, md5=md5("train"))], key),
           *_join([read_batch(root / "test", key, md5=md5("test"))], key))
    n = 100 if label == "fine" else 20
    _check_range(out[1], n, str(root))
    _check_range(out[3], n, str(root))
    return out


def load_cifar10(data_dir: Path | str | None, *, verify: bool = True) -> Arrays:
    """(train_x N x 3 x 32 x 32 uint8, train_y int64, test_x, test_y) of CIFAR-10."""
    return _cifar10(str(find_folder(data_dir, CIFAR10_FOLDER).resolve()), verify)


def load_cifar100(data_dir: Path | str | None, *, label: str = "fine", verify: bool = True) -> Arrays:
    """CIFAR-100 as for :func:`load_cifar10`; ``label`` is "fine" (100 classes) or "coarse" (20)."""
    if label not in ("fine", "coarse"):
        raise DataError(f"CIFAR-100 label must be 'fine' or 'coarse', got {label!r}")
    return _cifar100(str(find_folder(data_dir, CIFAR100_FOLDER).resolve()), label, verify)
