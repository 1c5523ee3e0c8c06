"""A tiny synthetic benchmark for fast tests: Gaussian class clusters, split into tasks."""

from __future__ import annotations

import torch

from retain.benchmarks import builders
from retain.benchmarks.base import Benchmark
from retain.benchmarks.registry import register_benchmark
from retain.data.transforms import ToFloat


@register_benchmark("synthetic", epochs=2, batch_size=16, lr=0.1)
def synthetic(*, tasks: int | None = None, seed: int = 0, scenario: str | None = None, data_dir=None,
              classes_per_task: int = 2, dim: int = 16, per_class: int = 64) -> Benchmark:
    """Tiny synthetic: Gaussian clusters, 2 classes a task, 16 features (for tests)."""
    tasks = tasks or 2
    builders.check_tasks("synthetic", tasks)
    g = torch.Generator().manual_seed(1000 + seed)
    n_cls = tasks * classes_per_task
    centers = torch.randn(n_cls, dim, generator=g) * 2.0

    def draw(n: int):
        y = torch.arange(n_cls).repeat_interleave(n)
        return centers[y] + torch.randn(len(y), dim, generator=g), y

    arrays = (*draw(per_class), *draw(per_class // 2))
    return builders.split("synthetic", arrays, tasks=tasks, seed=seed, scenario=scenario,
                          to_float=ToFloat(scale=1.0), num_classes=n_cls)
