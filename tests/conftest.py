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


def _required(found: Path | None, msg: str) -> Path:
    """``found``, or a skip with the reason (a failure under CI=true, where it must be there)."""
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " (CI=true: this must not be skipped)")
        pytest.skip(msg)
    return found


@pytest.fixture(scope="session")
def text_cl_dir() -> Path:
    """The real text-cl tasks (../shared/data/text-cl or $RETAIN_DATA/text-cl)."""
    candidates = [os.environ.get("RETAIN_DATA"), ROOT.parent / "shared" / "data"]
    found = next((Path(c) / "text-cl" for c in candidates if c and (Path(c) / "text-cl" / "agnews" / "train.jsonl")
                  .is_file()), None)
    return _required(found, "real text-cl data not found in $RETAIN_DATA/text-cl or ../shared/data/text-cl")


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 that scripts/fetch-models.py unpacks into models/ (or $RETAIN_MODELS)."""
    from text_fixtures import REAL_MINILM

    found = REAL_MINILM if (REAL_MINILM / "model.safetensors").is_file() else None
    return _required(found, f"real MiniLM-L6-v2 not in {REAL_MINILM} (run python scripts/fetch-models.py)")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A BERT of a few thousand parameters with its tokenizer, saved as save_pretrained writes them."""
    from text_fixtures import save_tiny_bert

    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def text_tasks(tmp_path) -> Path:
    """Three small learnable JSONL tasks (news: 3 labels; reviews and stars: the same 2)."""
    from text_fixtures import write_tasks

    return write_tasks(tmp_path / "tasks")


@pytest.fixture(autouse=True)
def _token_cache(tmp_path, monkeypatch):
    """Each test its own token cache: no test reads what another tokenised."""
    monkeypatch.setenv("RETAIN_CACHE", str(tmp_path / "retain-cache"))
