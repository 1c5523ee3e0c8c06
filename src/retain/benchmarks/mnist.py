"""MNIST benchmarks of the DER paper's protocols, read from the official IDX files."""

from __future__ import annotations

from retain.benchmarks import builders
from retain.benchmarks.base import Benchmark
from retain.benchmarks.registry import register_benchmark
from retain.data.idx import load_mnist
from retain.data.transforms import ToFloat

_TO_FLOAT = ToFloat()  # inputs in [0, 1], no mean/std normalisation (as in the DER paper)


@register_benchmark("permuted-mnist")
def permuted_mnist(*, tasks: int | None = None, seed: int = 0, scenario: str | None = None,
                   data_dir=None, permute_fraction: float = 1.0) -> Benchmark:
    """Permuted MNIST: 20 tasks, each a fixed pixel permutation (domain-IL)."""
    return builders.permuted("permuted-mnist", load_mnist(data_dir), tasks=tasks or 20, seed=seed,
                             scenario=scenario, to_float=_TO_FLOAT, num_classes=10,
                             fraction=permute_fraction)


@register_benchmark("rotated-mnist")
def rotated_mnist(*, tasks: int | None = None, seed: int = 0, scenario: str | None = None,
                  data_dir=None) -> Benchmark:
    """Rotated MNIST: 20 tasks, each a fixed rotation in [0, 180) degrees (domain-IL)."""
    return builders.rotated("rotated-mnist", load_mnist(data_dir), tasks=tasks or 20, seed=seed,
                            scenario=scenario, to_float=_TO_FLOAT, num_classes=10)


def _default_tasks(kept: list[int] | None) -> int:
    """Two digits a task; one a task for an odd subset."""
    if kept is None:
        return 5
    return len(kept) // 2 if len(kept) % 2 == 0 else len(kept)


@register_benchmark("split-mnist")
def split_mnist(*, tasks: int | None = None, seed: int = 0, scenario: str | None = None,
                data_dir=None, classes: str | int | None = None, train_per_class: int | None = None) -> Benchmark:
    """Split MNIST: 5 tasks of 2 digits (class-IL or task-IL); classes=4-9 keeps those digits only."""
    kept = builders.parse_classes(classes, 10, "split-mnist")
    return builders.split("split-mnist", load_mnist(data_dir), tasks=tasks or _default_tasks(kept),
                          seed=seed, scenario=scenario, to_float=_TO_FLOAT, num_classes=10, classes=kept,
                          train_per_class=train_per_class)
