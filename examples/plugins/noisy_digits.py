"""A benchmark plugin: sklearn's digits under more pixel noise in each task (domain-incremental).

    retain run --plugin examples/plugins/noisy_digits.py --benchmark noisy-digits \
        --benchmark-option max_std=0.5 --strategy er
"""

import torch

from retain.benchmarks import Benchmark, Experience, register_benchmark
from retain.benchmarks.digits import load_digits_split


class AddNoise:
    """uint8 8x8 digits -> flat floats in [0, 1] plus fixed-seed Gaussian noise of scale ``std``."""

    def __init__(self, std: float, seed: int):
        self.std, self.seed = std, seed

    def __call__(self, x):
        x = x.reshape(len(x), -1).float() / 16.0
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(self.seed))
        return x + self.std * noise


@register_benchmark("noisy-digits", epochs=5, batch_size=32, lr=0.1)
def noisy_digits(*, tasks: int | None = None, seed: int = 0, scenario: str | None = None, data_dir=None,
                 max_std: float = 1.0) -> Benchmark:
    """Digits with noise growing from 0 to ``max_std`` over the tasks (domain-IL)."""
    xtr, ytr, xte, yte = load_digits_split()
    tasks = tasks or 4
    exps = [Experience(task_id=t, classes=tuple(range(10)), train_x=xtr, train_y=ytr, test_x=xte, test_y=yte,
                       transform=AddNoise(max_std * t / max(tasks - 1, 1), seed + t), name=f"noise {t}", origin=t)
            for t in range(tasks)]
    return Benchmark("noisy-digits", exps, scenario or "domain-il", (64,), 10)
