"""Shared fixtures. Tests run single-threaded torch so results are stable and 2 cores suffice."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")


def _mnist_dir() -> Path | None:
    candidates = [os.environ.get("RETAIN_DATA"), ROOT.parent / "shared" / "data" / "mnist"]
    for c in candidates:
        if c and all(any((Path(c) / f"{f}{ext}").is_file() for ext in (".gz", "")) for f in MNIST_FILES):
            return Path(c)
    return None


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST files. Skipped with the reason on a user's machine without them; under CI
    (CI=true) a missing file is a failure, never a skip."""
    found = _mnist_dir()
    if found is None:
        msg = "real MNIST not found in $RETAIN_DATA or ../shared/data/mnist"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " (CI=true: this must not be skipped)")
        pytest.skip(msg)
    return found
