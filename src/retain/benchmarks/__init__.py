"""Benchmarks: streams of experiences, registered by name."""

import inspect

from retain.benchmarks import cifar, core50, digits, mnist, synthetic  # noqa: F401  (register built-ins)
from retain.benchmarks.base import SCENARIOS, Benchmark, Experience
from retain.benchmarks.registry import BENCHMARKS, register_benchmark
from retain.errors import ConfigError


def make_benchmark(name: str, **kwargs) -> Benchmark:
    """Build the registered benchmark ``name``; unknown names and options raise ConfigError."""
    factory = BENCHMARKS.get(name)
    accepted = inspect.signature(factory).parameters
    unknown = sorted(k for k in kwargs if k not in accepted)
    if unknown:
        options = sorted(k for k, p in accepted.items() if p.kind == p.KEYWORD_ONLY
                         and k not in ("tasks", "seed", "scenario", "data_dir"))
        raise ConfigError(f"{name}: unknown benchmark option(s) {', '.join(unknown)}; "
                          f"known: {', '.join(options) or 'none'}")
    return factory(**kwargs)


__all__ = ["BENCHMARKS", "SCENARIOS", "Benchmark", "Experience", "make_benchmark", "register_benchmark"]
