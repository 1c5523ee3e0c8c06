"""The embedded default: scikit-learn's bundled 8x8 digits (1,797 images), no download needed."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from retain.benchmarks import builders
from retain.benchmarks.base import Benchmark
from retain.benchmarks.registry import register_benchmark
from retain.data.transforms import ToFloat

_TO_FLOAT = ToFloat(scale=1.0 / 16.0)  # digits pixels are 0..16


@lru_cache(maxsize=1)
def load_digits_split(test_fraction: float = 0.25):
    """Stratified, fixed train/test split of the digits (the split never depends on the run seed)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = data.images.astype(np.uint8)
    xtr, xte, ytr, yte = train_test_split(x, data.target, test_size=test_fraction, random_state=0,
                                          stratify=data.target)
    as_t = torch.from_numpy
    return as_t(xtr.copy()), as_t(ytr.astype(np.int64)), as_t(xte.copy()), as_t(yte.astype(np.int64))


@register_benchmark("permuted-digits", epochs=10, batch_size=32, lr=0.1)
def permuted_digits(*, tasks: int | None = None, seed: int = 0, scenario: str | None = None,
                    data_dir=None, permute_fraction: float = 1.0) -> Benchmark:
    """Permuted digits: each task a fixed pixel permutation of sklearn's 8x8 digits (domain-IL)."""
    return builders.permuted("permuted-digits", load_digits_split(), tasks=tasks or 5, seed=seed,
                             scenario=scenario, to_float=_TO_FLOAT, num_classes=10,
                             fraction=permute_fraction)


@register_benchmark("split-digits", epochs=10, batch_size=32, lr=0.1)
def split_digits(*, tasks: int | None = None, seed: int = 0, scenario: str | None = None,
                 data_dir=None) -> Benchmark:
    """Split digits: 5 tasks of 2 digits from sklearn's 8x8 digits (class-IL or task-IL)."""
    return builders.split("split-digits", load_digits_split(), tasks=tasks or 5, seed=seed,
                          scenario=scenario, to_float=_TO_FLOAT, num_classes=10)
