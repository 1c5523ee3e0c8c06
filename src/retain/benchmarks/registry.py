"""The benchmark registry. A benchmark is a factory taking keyword-only, seeded arguments:
``factory(*, tasks, seed, scenario, data_dir, **options) -> Benchmark``."""

from __future__ import annotations

from collections.abc import Callable

from retain.benchmarks.base import Benchmark
from retain.registry import Registry

BenchmarkFactory = Callable[..., Benchmark]
BENCHMARKS: Registry[BenchmarkFactory] = Registry("benchmark")

#: Training settings a benchmark recommends (epochs, batch_size, lr), used for any the user
#: leaves unset. MNIST values follow the DER paper's protocol.
TRAINING_DEFAULTS: dict[str, dict] = {}
GENERIC_DEFAULTS = {"epochs": 1, "batch_size": 128, "lr": 0.1}


def register_benchmark(name: str, **training_defaults):
    """Register a benchmark factory, optionally with recommended epochs / batch_size / lr. The
    defaults are written only once the name is registered: a refused name changes nothing."""
    register = BENCHMARKS.register(name)  # a taken or reserved name is refused here

    def decorator(factory: BenchmarkFactory) -> BenchmarkFactory:
        register(factory)
        TRAINING_DEFAULTS[name] = {**GENERIC_DEFAULTS, **training_defaults}
        return factory

    return decorator
