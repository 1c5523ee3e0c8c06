"""Reader for CORe50 (Lomonaco & Maltoni, CoRL 2017, https://vlomonaco.github.io/core50/).

Files, as published: ``core50_imgs.npz`` holds one array ``x`` of all 164,866 frames,
N x 128 x 128 x 3 uint8; ``paths.pkl`` the list of N relative paths ``sS/oO/C_SS_OO_FFF.png``
(session S of 11, object O of 50); ``LUP.pkl`` and ``labels.pkl`` dicts keyed by scenario
(``"ni"``, ``"nc"``, ``"nic"``), then run (10 orders), then batch: lists of image indices and of
labels (object ids 0..49; the category is ``object // 5``). The last batch of every run is the
test set: sessions 3, 7 and 10. NI has 8 training batches (one session each), NC 9 (10 objects,
then 5 per batch).

The array is read as a stream from the zip, a chunk of rows at a time, so a 32 x 32 copy
(box-averaged 4 x 4, about 0.5 GB) never needs the 8 GB of the full-size array in memory;
that copy is cached next to the file, written atomically.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from retain.data.safe_pickle import safe_loads
from retain.errors import DataError

NATIVE = 128
TEST_SESSIONS = (3, 7, 10)
BATCHES = {"ni": 8, "nc": 9}
TABLE_MD5 = {"paths.pkl": "b568f86998849184df3ec3465290f1b0", "LUP.pkl": "33afc26faa460aca98739137fdfa606e",
             "labels.pkl": "281c95774306a2196f4505f22fd60ab1"}
_SESSION = re.compile(r"^s(\d+)/o(\d+)/")


def find_core50(data_dir: Path | str | None) -> Path:
    if data_dir is None:
        raise DataError("CORe50 needs a data directory: pass --data-dir or set RETAIN_DATA")
    root = Path(data_dir)
    for candidate in (root / "core50", root):
        if (candidate / "core50_imgs.npz").is_file():
            return candidate
    raise DataError(f"{root}: core50_imgs.npz not found in it or in core50/ (run `retain data download core50 "
                    f"--data-dir {root}`)")


def _table(root: Path, name: str, verify: bool):
    path = root / name
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if verify and hashlib.md5(raw).hexdigest() != TABLE_MD5[name]:
        raise DataError(f"{path}: checksum mismatch (expected md5 {TABLE_MD5[name]}); corrupt or not official")
    return safe_loads(raw, str(path))


def sessions_of(paths: list[str], source: str) -> np.ndarray:
    """Session number (1..11) of each image, parsed from its path."""
    out = np.empty(len(paths), dtype=np.int64)
    for i, p in enumerate(paths):
        m = _SESSION.match(str(p).replace("\\", "/"))
        if m is None:
            raise DataError(f"{source}: path {i} is {p!r}, expected sS/oO/...png")
        out[i] = int(m.group(1))
    return out


def scenario_batches(root: Path, scenario: str, run: int, n_images: int, verify: bool):
    """[(indices, labels)] for the training batches of ``scenario``/``run``, then the test batch."""
    lup, labels = _table(root, "LUP.pkl", verify), _table(root, "labels.pkl", verify)
    try:
        runs, label_runs = lup[scenario], labels[scenario]
        batches, label_batches = runs[run], label_runs[run]
    except (KeyError, IndexError, TypeError):
        raise DataError(f"{root}: LUP.pkl/labels.pkl have no scenario {scenario!r} run {run}") from None
    if len(batches) != BATCHES[scenario] + 1 or len(label_batches) != len(batches):
        raise DataError(f"{root}: {scenario} run {run} has {len(batches)} index and {len(label_batches)} label "
                        f"batches, expected {BATCHES[scenario]} training batches plus the test batch")
    out = []
    for b, (idx, lab) in enumerate(zip(batches, label_batches)):
        idx, lab = np.asarray(idx, dtype=np.int64), np.asarray(lab, dtype=np.int64)
        if idx.shape != lab.shape or (idx.size and (idx.min() < 0 or idx.max() >= n_images)):
            raise DataError(f"{root}: {scenario} run {run} batch {b}: {idx.size} indices / {lab.size} labels, "
                            f"indices must lie in [0, {n_images})")
        if lab.size and (lab.min() < 0 or lab.max() >= 50):
            raise DataError(f"{root}: {scenario} run {run} batch {b}: labels must be object ids 0..49")
        out.append((idx, lab))
    return out


def _read_rows(f, shape, dtype, size: int, source: str) -> np.ndarray:
    n, row = shape[0], int(np.prod(shape[1:])) * dtype.itemsize
    out = np.empty((n, 3, size, size), dtype=np.uint8)
    chunk = 2048
    for start in range(0, n, chunk):
        k = min(chunk, n - start)
        buf = bytearray(f.read(k * row))  # writable, so torch can wrap it without a warning
        if len(buf) != k * row:
            raise DataError(f"{source}: array x ends after {start + len(buf) // row} of {n} images (truncated)")
        imgs = torch.from_numpy(np.frombuffer(buf, dtype=np.uint8).reshape(k, *shape[1:])).permute(0, 3, 1, 2)
        if size != NATIVE:  # box average: exact for the integer factors 128 / size
            imgs = F.avg_pool2d(imgs.float(), NATIVE // size).round_().to(torch.uint8)
        out[start:start + k] = imgs.numpy()
    return out


def read_images(npz: Path, size: int = NATIVE) -> np.ndarray:
    """N x 3 x size x size uint8 from the ``x`` array of ``core50_imgs.npz``, streamed."""
    try:
        with zipfile.ZipFile(npz) as zf, zf.open("x.npy") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
            if dtype != np.uint8 or fortran or len(shape) != 4 or shape[1:] != (NATIVE, NATIVE, 3):
                raise DataError(f"{npz}: x must be N x 128 x 128 x 3 uint8 (C order), got {shape} {dtype}")
            return _read_rows(f, shape, dtype, size, str(npz))
    except KeyError:
        raise DataError(f"{npz}: no array 'x' in the file") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise DataError(f"{npz}: cannot read ({exc.__class__.__name__}: {exc}); truncated or corrupt") from None


def cached_images(root: Path, size: int) -> np.ndarray:
    """:func:`read_images`, with a downsampled copy cached as ``core50_imgs_{size}px.npy``; the
    cache is written to a temporary name and renamed, so a failure never leaves half a cache."""
    npz = root / "core50_imgs.npz"
    if size == NATIVE:
        return read_images(npz, size)
    cache = root / f"core50_imgs_{size}px.npy"
    if cache.is_file() and cache.stat().st_mtime_ns >= npz.stat().st_mtime_ns:
        try:
            return np.load(cache)
        except (ValueError, OSError, EOFError):
            cache.unlink()  # a damaged cache is rebuilt from the source
    x = read_images(npz, size)
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.save(f, x)
        os.replace(tmp, cache)
    except OSError:  # a read-only data directory: work without the cache
        tmp.unlink(missing_ok=True)
    return x


@lru_cache(maxsize=1)  # one copy of the images in memory, shared by NI and NC and every run
def _images(root: str, size: int, mtime_ns: int) -> Tensor:
    return torch.from_numpy(cached_images(Path(root), size))


def load_core50(root: str, scenario: str, run: int, size: int, verify: bool):
    """(images N x 3 x size x size uint8 tensor, sessions per image, [(idx, labels)] batches + test)."""
    if size not in (32, 64, NATIVE):
        raise DataError(f"CORe50 image size must be 32, 64 or 128, got {size}")
    path = Path(root)
    paths = _table(path, "paths.pkl", verify)
    sessions = sessions_of(list(paths), str(path / "paths.pkl"))
    images = _images(root, size, (path / "core50_imgs.npz").stat().st_mtime_ns)
    if images.shape[0] != len(sessions):
        raise DataError(f"{path}: core50_imgs.npz has {images.shape[0]} images but paths.pkl {len(sessions)} paths")
    batches = scenario_batches(path, scenario, run, len(sessions), verify)
    test_sessions = set(np.unique(sessions[batches[-1][0]]).tolist())
    if not test_sessions <= set(TEST_SESSIONS):
        raise DataError(f"{path}: the {scenario} test batch holds sessions {sorted(test_sessions)}, expected only "
                        f"{list(TEST_SESSIONS)}")
    return images, sessions, batches
