"""Reader for the IDX format of the MNIST database (gzip-compressed or raw), with checksums."""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from retain.errors import DataError

# MD5 of the *uncompressed* official files: gzip wrappers differ between mirrors, content doesn't.
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def default_data_dir() -> Path | None:
    env = os.environ.get("RETAIN_DATA")
    return Path(env) if env else None


def find_file(data_dir: Path, stem: str) -> Path:
    """The IDX file ``stem`` in ``data_dir`` or ``data_dir/mnist``, gzip preferred."""
    for folder in (data_dir, data_dir / "mnist", data_dir / "MNIST" / "raw"):
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
    raise DataError(f"{data_dir}: MNIST file {stem}(.gz) not found (run `retain data download mnist "
                    f"--data-dir {data_dir}`)")


def read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read ({exc.__class__.__name__}: {exc}); the file is truncated "
                        "or corrupt") from None


def parse_idx(data: bytes, source: str) -> np.ndarray:
    """Parse IDX bytes: magic 0x0000 + dtype byte + ndim byte, ndim big-endian int32 dims."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise DataError(f"{source}: not an IDX file (bad magic {data[:4].hex() or 'empty'})")
    ndim = data[3]
    if ndim == 0:  # a scalar: no sample axis, not data of any kind
        raise DataError(f"{source}: IDX file with 0 dimensions; expected at least 1 (the sample axis)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{source}: IDX header truncated")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[data[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(f"{source}: IDX body has {len(data) - header} bytes, header {dims} needs {expected}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)


def _check_md5(path: Path, data: bytes, md5: str) -> None:
    if hashlib.md5(data).hexdigest() != md5:
        raise DataError(f"{path}: content checksum mismatch (expected md5 {md5}); the file is corrupt "
                        "or not the official MNIST")


def read_idx(path: Path, *, md5: str | None = None) -> np.ndarray:
    data = read_bytes(path)
    array = parse_idx(data, str(path))  # structure first: a bad magic says more than a checksum
    stem = path.name.removesuffix(".gz")
    if stem in MNIST_MD5:  # so are swapped images and labels files
        _check_shape(path, stem, array)
    if md5 is not None:
        _check_md5(path, data, md5)
    return array


def _check_shape(path: Path, stem: str, array: np.ndarray) -> None:
    """Images N x 28 x 28, labels N; a labels file where images belong (or the reverse) is said so."""
    images = "images" in stem
    if array.shape[1:] == ((28, 28) if images else ()) and array.ndim == (3 if images else 1):
        return
    other = "labels" if images else "images"
    looks = array.ndim == (1 if images else 3)
    hint = f"; it looks like a {other} file (are the images and labels files swapped?)" if looks else ""
    expected = "N x 28 x 28 images" if images else "N labels (1 dimension)"
    raise DataError(f"{path}: expected {expected}, got shape {tuple(array.shape)}{hint}")


@lru_cache(maxsize=4)
def _load_mnist_cached(data_dir: str, verify: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"{root}: data directory does not exist (set --data-dir or RETAIN_DATA)")
    arrays, raw = {}, {}
    for stem in MNIST_MD5:
        path = find_file(root, stem)
        raw[stem] = (path, read_bytes(path))
        arrays[stem] = parse_idx(raw[stem][1], str(path))
    for stem, array in arrays.items():  # shapes before counts: swapped files are named as such
        _check_shape(raw[stem][0], stem, array)
    out = []
    for split in ("train", "t10k"):  # counts before checksums: the more telling message first
        images, labels = arrays[f"{split}-images-idx3-ubyte"], arrays[f"{split}-labels-idx1-ubyte"]
        if images.shape[0] != labels.shape[0]:
            raise DataError(f"{raw[f'{split}-images-idx3-ubyte'][0]} has {images.shape[0]} images but "
                            f"{raw[f'{split}-labels-idx1-ubyte'][0].name} has {labels.shape[0]} labels; "
                            "expected one label per image")
        out += [torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))]
    for stem, md5 in MNIST_MD5.items() if verify else ():
        _check_md5(*raw[stem], md5)
    return tuple(out)  # type: ignore[return-value]


def load_mnist(data_dir: Path | str | None, *, verify: bool = True) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(train_x uint8 N x 28 x 28, train_y int64, test_x, test_y) from the official IDX files."""
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    if root is None:
        raise DataError("MNIST needs a data directory: pass --data-dir or set RETAIN_DATA")
    return _load_mnist_cached(str(root.resolve()), verify)
