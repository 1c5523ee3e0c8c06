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
#: What each benchmark's inputs are: "image" (pixels or features as floats) or "text" (token rows; its
#: factory takes a ``tokenizer`` option, which a run fills from its backbone). A backbone of the other
#: kind is refused before any run.
MODALITIES: dict[str, str] = {}
MODALITY_NAMES = ("image", "text")


def register_benchmark(name: str, *, modality: str = "image", **training_defaults):
    """Register a benchmark factory, optionally with recommended epochs / batch_size / lr / optimizer and
    the kind of its inputs (``modality``). The defaults are written only once the name is registered: a
    refused name changes nothing."""
    if modality not in MODALITY_NAMES:
        raise ValueError(f"benchmark {name}: modality must be one of {MODALITY_NAMES}, got {modality!r}")
    register = BENCHMARKS.register(name)  # a taken or reserved name is refused here

    def decorator(factory: BenchmarkFactory) -> BenchmarkFactory:
        register(factory)
        TRAINING_DEFAULTS[name] = {**GENERIC_DEFAULTS, **training_defaults}
        MODALITIES[name] = modality
        return factory

    return decorator
