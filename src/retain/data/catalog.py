"""Where each dataset is published and the checksums its publishers give.

MNIST: the LeCun site (often refusing scripted downloads) and the mirror torchvision uses, with
the MD5s of the official ``.gz`` files. CIFAR: the Toronto archives with their published MD5s.
CORe50: the array file and its three look-up pickles from the authors' servers (MD5s as listed by
Avalanche's ``core50_data.py``). The 128 x 128 PNG archive is not fetched: the readers use the
``core50_imgs.npz`` array, which holds the same images.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Remote:
    """One published file: its name on disk, the addresses to try in order, its MD5."""

    filename: str
    urls: tuple[str, ...]
    md5: str
    archive: bool = False  # a .tar.gz to unpack (after its checksum is verified)


@dataclass(frozen=True)
class DatasetFiles:
    """A dataset: the folder (relative to the data directory) its files go to, the remote files,
    and, for ``retain data check``, the MD5 of each unpacked file (path relative to the data dir)."""

    name: str
    folder: str
    remotes: tuple[Remote, ...]
    contents: dict[str, str] = field(default_factory=dict)


_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_MNIST_GZ = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
_CIFAR = "https://www.cs.toronto.edu/~kriz/"
_CORE50_DATA = "https://vlomonaco.github.io/core50/data/"
_CORE50_BIG = "http://bias.csr.unibo.it/maltoni/download/core50/"


def _cifar_contents(folder: str, md5s: dict[str, str]) -> dict[str, str]:
    return {f"{folder}/{name}": md5 for name, md5 in md5s.items()}


def default_catalog() -> dict[str, DatasetFiles]:
    from retain.data.cifar import CIFAR10_MD5, CIFAR100_MD5

    return {
        "mnist": DatasetFiles("mnist", "mnist", tuple(
            Remote(name, tuple(m + name for m in _MNIST_MIRRORS), md5) for name, md5 in _MNIST_GZ.items())),
        "cifar10": DatasetFiles("cifar10", "", (
            Remote("cifar-10-python.tar.gz", (_CIFAR + "cifar-10-python.tar.gz",),
                   "c58f30108f718f92721af3b95e74349a", archive=True),),
            _cifar_contents("cifar-10-batches-py", CIFAR10_MD5)),
        "cifar100": DatasetFiles("cifar100", "", (
            Remote("cifar-100-python.tar.gz", (_CIFAR + "cifar-100-python.tar.gz",),
                   "eb9058c3a382ffc7106e4002c42a8d85", archive=True),),
            _cifar_contents("cifar-100-python", CIFAR100_MD5)),
        "core50": DatasetFiles("core50", "core50", (
            Remote("core50_imgs.npz", (_CORE50_BIG + "core50_imgs.npz",), "3689d65d0a1c760b87821b114c8c4c6c"),
            Remote("paths.pkl", (_CORE50_DATA + "paths.pkl",), "b568f86998849184df3ec3465290f1b0"),
            Remote("LUP.pkl", (_CORE50_DATA + "LUP.pkl",), "33afc26faa460aca98739137fdfa606e"),
            Remote("labels.pkl", (_CORE50_DATA + "labels.pkl",), "281c95774306a2196f4505f22fd60ab1"),
        )),
    }
