"""Reader of a folder tree of images by class (PNG, JPEG), decoded once into a uint8 cache file.

Layout: ``ROOT/train/<class>/*.png|jpg|jpeg`` and ``ROOT/test/<class>/...``; or ``ROOT/<class>/...``
(or ``ROOT/train/<class>/`` alone), from which a fixed fraction of each class is held out for
testing, drawn with seed 0 so the test set never depends on the run seed. Class names sorted give
the label ids; names and files starting with "." are skipped.

Every image is converted to one mode (RGB; L when the first image is grayscale) and resized to
one size (the first image's unless given) and kept as ``N x C x H x W`` uint8. With the cache, the
decoded images are written once to ``ROOT/.retain-cache/images-WxH-MODE-KEY.npy`` (under
``$XDG_CACHE_HOME/retain/folders/`` when ROOT is not writable), KEY a hash of every file's
relative path, size and modification time and of the size and mode, so a changed folder is
decoded again. The file is written under a temporary name and renamed when complete, then opened
memory-mapped: a later run maps it and reads only the batches it needs.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from retain.errors import ConfigError, DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MODES = ("RGB", "L")
_GRAY = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
MAX_SIDE = 4096
CACHE_VERSION = 1


@dataclass(frozen=True)
class Listing:
    """The images under a root: every file once, its label, and which rows are train and test."""

    root: Path
    files: tuple[Path, ...]
    labels: np.ndarray  # int64 label id of each file
    class_names: tuple[str, ...]
    train_rows: np.ndarray
    test_rows: np.ndarray
    split: str  # "folders": train/ and test/ given; "held-out": test rows drawn from each class


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


def _classes(folder: Path) -> dict[str, list[Path]]:
    """Class name -> its image files (sorted), for the class folders directly under ``folder``."""
    out = {}
    for d in sorted(p for p in folder.iterdir() if p.is_dir() and _visible(p)):
        files = sorted(f for f in d.iterdir() if f.is_file() and _visible(f) and f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{d}: no PNG or JPEG images in this class folder")
        out[d.name] = files
    if not out:
        raise DataError(f"{folder}: no class folders (expected {folder}/<class>/*.png or .jpg)")
    return out


def held_out(labels: np.ndarray, fraction: float, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows): ``round(fraction * n)`` (at least 1, at most n - 1) of each class's
    n rows held out, drawn with seed 0."""
    rng = np.random.default_rng(0)
    train, test = [], []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        if len(rows) < 2:
            raise DataError(f"class folder {names[c]!r} has 1 image; at least 2 are needed to hold one out "
                            "for testing")
        k = min(len(rows) - 1, max(1, round(fraction * len(rows))))
        chosen = rng.permutation(rows)
        test.append(chosen[:k])
        train.append(chosen[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def list_images(root: str | os.PathLike, *, test_fraction: float | None = None) -> Listing:
    """The class folders under ``root``; see the module docstring for the layouts."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: no such directory")
    train_dir, test_dir = root / "train", root / "test"
    if test_dir.is_dir() and not train_dir.is_dir():
        raise DataError(f"{root}: has test/ but no train/")
    if train_dir.is_dir() and test_dir.is_dir():
        if test_fraction is not None:
            raise ConfigError(f"{root}: test_fraction is for a folder without train/ and test/; this one has both")
        train, test = _classes(train_dir), _classes(test_dir)
        if sorted(train) != sorted(test):
            only = sorted(set(train) ^ set(test))
            raise DataError(f"{root}: train/ and test/ must hold the same class folders; {only[0]!r} is in only one")
        names = tuple(sorted(train))
        files = [f for n in names for f in train[n]] + [f for n in names for f in test[n]]
        labels = np.array([i for i, n in enumerate(names) for _ in train[n]]
                          + [i for i, n in enumerate(names) for _ in test[n]], dtype=np.int64)
        n_train = sum(len(v) for v in train.values())
        return Listing(root, tuple(files), labels, names, np.arange(n_train), np.arange(n_train, len(files)),
                       "folders")
    fraction = 0.2 if test_fraction is None else test_fraction
    if not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
        raise ConfigError(f"{root}: test_fraction must be in (0, 1), got {fraction!r}")
    classes = _classes(train_dir if train_dir.is_dir() else root)
    names = tuple(sorted(classes))
    files = [f for n in names for f in classes[n]]
    labels = np.array([i for i, n in enumerate(names) for _ in classes[n]], dtype=np.int64)
    try:
        train_rows, test_rows = held_out(labels, fraction, names)
    except DataError as exc:
        raise DataError(f"{root}: {exc}") from None
    return Listing(root, tuple(files), labels, names, train_rows, test_rows, "held-out")


def parse_size(value: Any) -> tuple[int, int] | None:
    """``32`` -> (32, 32); ``"40x30"`` -> (width 40, height 30); None stays None."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        w = h = value
    elif isinstance(value, str) and value.lower().count("x") == 1:
        try:
            w, h = (int(v) for v in value.lower().split("x"))
        except ValueError:
            w = h = 0
    else:
        w = h = 0
    if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE):
        raise ConfigError(f"size must be a side in pixels (e.g. 32) or WIDTHxHEIGHT (e.g. 40x30), each 1 to "
                          f"{MAX_SIDE}, got {value!r}")
    return w, h


def parse_mode(value: Any) -> str | None:
    if value is None:
        return None
    mode = str(value).upper()
    if mode not in MODES:
        raise ConfigError(f"mode must be RGB or L (grayscale), got {value!r}")
    return mode


def open_image(path: Path):
    """The decoded PIL image at ``path``; an unreadable or corrupt file raises DataError naming it."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            img.load()
        return img
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: not a readable image ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                        ) from None


def image_geometry(img, size: Any, mode: Any, *, where: str = "") -> tuple[tuple[int, int], str]:
    """(size, mode) every image becomes: the options when given, else the first image's size and
    L for a grayscale first image, RGB otherwise."""
    if not hasattr(img, "convert"):
        raise ConfigError(f"{where}: expected an image, got {type(img).__name__}")
    given = parse_size(size)
    if given is None and max(img.size) > MAX_SIDE:  # refused before anything is decoded or cached
        raise ConfigError(f"{where}: the first image is {img.size[0]}x{img.size[1]}, more than {MAX_SIDE} pixels a "
                          "side, and every image would be kept at its size; give the size option (e.g. "
                          "--benchmark-option size=64)")
    return given or tuple(img.size), parse_mode(mode) or ("L" if img.mode in _GRAY else "RGB")


def image_array(img, size: tuple[int, int], mode: str, *, where: str = "") -> np.ndarray:
    """``img`` in ``mode`` at ``size`` as C x H x W uint8 (bilinear resampling when resized)."""
    from PIL import Image

    if img.mode != mode:
        img = img.convert(mode)
    if tuple(img.size) != tuple(size):
        img = img.resize(size, Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def geometry_of(listing: Listing, size: Any, mode: Any) -> tuple[tuple[int, int], str]:
    first = listing.files[listing.train_rows[0]]
    return image_geometry(open_image(first), size, mode, where=str(first))


def _key(listing: Listing, size: tuple[int, int], mode: str) -> str:
    entries = []
    for f in listing.files:
        try:
            st = f.stat()
        except OSError as exc:
            raise DataError(f"{f}: cannot be read ({exc.strerror})") from None
        entries.append([f.relative_to(listing.root).as_posix(), st.st_size, st.st_mtime_ns])
    return hashlib.sha256(json.dumps([CACHE_VERSION, list(size), mode, entries]).encode()).hexdigest()[:20]


def cache_dir(root: Path) -> Path:
    """``ROOT/.retain-cache``, or a per-root folder of the user's cache when ROOT is not writable."""
    local = root / ".retain-cache"
    try:
        local.mkdir(exist_ok=True)
        if os.access(local, os.W_OK):
            return local
    except OSError:
        pass
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "retain" / "folders" / hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]


def _fill(out: np.ndarray, listing: Listing, size: tuple[int, int], mode: str) -> None:
    for i, f in enumerate(listing.files):
        out[i] = image_array(open_image(f), size, mode, where=str(f))


def decode(listing: Listing, size: tuple[int, int], mode: str, *, cache: bool = True) -> tuple[np.ndarray, str]:
    """(every image as N x C x H x W uint8, where it lives): memory-mapped from the cache file when
    ``cache``, else decoded into memory (kept for the process's next build of the same folder)."""
    if not cache:
        return _decoded(listing, size, mode, _key(listing, size, mode)), "memory"
    shape = (len(listing.files), 1 if mode == "L" else 3, size[1], size[0])
    prefix = f"images-{size[0]}x{size[1]}-{mode}-"
    folder = cache_dir(listing.root)
    path = folder / f"{prefix}{_key(listing, size, mode)}.npy"
    if path.is_file():
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            if arr.shape == shape and arr.dtype == np.uint8:
                return arr, str(path)
        except (OSError, ValueError):
            pass  # unreadable: write it again
    if path.exists() and not path.is_file():
        raise DataError(f"{path}: not a file, where the decoded images' cache file goes; remove it, or give "
                        "--benchmark-option cache=false")
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        _fill(out, listing, size, mode)
        out.flush()
        del out
        os.replace(tmp, path)
    except OSError as exc:  # a full disk, a folder where the file goes, no permission
        raise DataError(f"{path}: cannot write the decoded images' cache ({exc.strerror or exc}); free the space "
                        "or remove what is there, or give --benchmark-option cache=false") from None
    finally:
        tmp.unlink(missing_ok=True)
    for stale in folder.glob(f"{prefix}*.npy"):  # the same folder, size and mode before it changed
        if stale != path and stale.is_file():
            stale.unlink(missing_ok=True)
    return np.load(path, mmap_mode="r", allow_pickle=False), str(path)


@lru_cache(maxsize=1)
def _decoded_cached(root: Path, files: tuple[Path, ...], size: tuple[int, int], mode: str, key: str) -> np.ndarray:
    del key  # part of the cache key only: a changed file changes it
    out = np.empty((len(files), 1 if mode == "L" else 3, size[1], size[0]), dtype=np.uint8)
    _fill(out, Listing(root, files, np.empty(0), (), np.empty(0), np.empty(0), ""), size, mode)
    return out  # callers copy the rows they use; nothing writes to it


def _decoded(listing: Listing, size: tuple[int, int], mode: str, key: str) -> np.ndarray:
    return _decoded_cached(listing.root, listing.files, size, mode, key)
