"""Writers of small files in exactly the official layouts of CIFAR and CORe50, for the tests.

The official pickles were written by Python 2 (protocol 2): dict keys and file names are Python 2
``str`` (opcode BINSTRING), arrays are rebuilt by ``numpy.core.multiarray._reconstruct``. The
pickler below writes ``bytes`` that way and names numpy's old module, as those files do.
"""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path
from types import FunctionType

import numpy as np


class Py2Pickler(pickle._Pickler):
    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    def save_global(self, obj, name=None) -> None:
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)

    dispatch[bytes] = save_bytes
    dispatch[FunctionType] = save_global


def py2_dumps(obj) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def write_py2(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(py2_dumps(obj))


def images(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def write_cifar10(root: Path, per_class: int = 2, seed: int = 0) -> Path:
    """cifar-10-batches-py with 5 train batches and a test batch, ``per_class`` images a class each."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [int(v) for v in rng.permutation(np.repeat(np.arange(10), per_class))]
        write_py2(folder / name, {b"batch_label": b"training batch", b"labels": labels,
                                  b"data": images(rng, len(labels)),
                                  b"filenames": [b"img_%d.png" % i for i in range(len(labels))]})
    write_py2(folder / "batches.meta", {b"label_names": [b"c%d" % i for i in range(10)],
                                        b"num_cases_per_batch": 10 * per_class, b"num_vis": 3072})
    return folder


def write_cifar100(root: Path, per_class: int = 2, test_per_class: int = 1, seed: int = 0) -> Path:
    """cifar-100-python/train, test, meta with fine (100) and coarse (20) labels."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    for name, k in (("train", per_class), ("test", test_per_class)):
        fine = rng.permutation(np.repeat(np.arange(100), k))
        write_py2(folder / name, {b"filenames": [b"f%d.png" % i for i in range(len(fine))], b"batch_label": b"b",
                                  b"fine_labels": [int(v) for v in fine], b"coarse_labels": [int(v) // 5 for v in fine],
                                  b"data": images(rng, len(fine))})
    write_py2(folder / "meta", {b"fine_label_names": [b"f%d" % i for i in range(100)],
                                b"coarse_label_names": [b"c%d" % i for i in range(20)]})
    return folder


def write_core50(root: Path, frames: int = 1, runs: int = 2, seed: int = 0, compressed: bool = False) -> Path:
    """core50/ with core50_imgs.npz (x: N x 128 x 128 x 3), paths.pkl, labels.pkl and LUP.pkl for
    the ni and nc scenarios: 11 sessions x 50 objects x ``frames`` frames, test sessions 3, 7, 10."""
    rng = np.random.default_rng(seed)
    folder = root / "core50"
    folder.mkdir(parents=True, exist_ok=True)
    paths, sess, obj = [], [], []
    for s in range(1, 12):
        for o in range(1, 51):
            for f in range(frames):
                paths.append(b"s%d/o%d/C_%02d_%02d_%03d.png" % (s, o, s, o, f))
                sess.append(s)
                obj.append(o - 1)
    sess, obj = np.array(sess), np.array(obj)
    x = rng.integers(0, 256, size=(len(paths), 128, 128, 3), dtype=np.uint8)
    (np.savez_compressed if compressed else np.savez)(folder / "core50_imgs.npz", x=x)
    write_py2(folder / "paths.pkl", paths)
    test = [int(i) for i in np.flatnonzero(np.isin(sess, (3, 7, 10)))]
    train_sessions = [s for s in range(1, 12) if s not in (3, 7, 10)]
    lup, labels = {b"ni": [], b"nc": [], b"nic": []}, {b"ni": [], b"nc": [], b"nic": []}
    for _ in range(runs):
        order = rng.permutation(train_sessions)
        ni = [[int(i) for i in np.flatnonzero(sess == s)] for s in order] + [test]
        objs = rng.permutation(50)
        groups = [objs[:10]] + [objs[10 + 5 * k: 15 + 5 * k] for k in range(8)]
        train = ~np.isin(sess, (3, 7, 10))
        nc = [[int(i) for i in np.flatnonzero(train & np.isin(obj, g))] for g in groups] + [test]
        for key, batches in ((b"ni", ni), (b"nc", nc), (b"nic", ni)):
            lup[key].append(batches)
            labels[key].append([[int(obj[i]) for i in b] for b in batches])
    write_py2(folder / "LUP.pkl", lup)
    write_py2(folder / "labels.pkl", labels)
    return folder
