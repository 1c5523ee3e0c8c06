"""Benchmarks: streams of experiences, registered by name."""

from retain.benchmarks import cifar, core50, digits, mnist, synthetic  # noqa: F401  (register built-ins)
from retain.benchmarks.base import SCENARIOS, Benchmark, Experience
from retain.benchmarks.registry import BENCHMARKS, register_benchmark


def make_benchmark(name: str, **kwargs) -> Benchmark:
    """Build the registered benchmark ``name`` (unknown names raise ConfigError)."""
    return BENCHMARKS.get(name)(**kwargs)


__all__ = ["BENCHMARKS", "SCENARIOS", "Benchmark", "Experience", "make_benchmark", "register_benchmark"]
