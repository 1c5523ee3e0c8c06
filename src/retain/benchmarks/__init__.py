"""Benchmarks: streams of experiences, registered by name."""

import inspect

from retain.benchmarks.base import SCENARIOS, Benchmark, Experience
from retain.benchmarks.custom import from_arrays, from_dataset, from_hf
from retain.benchmarks.registry import BENCHMARKS, register_benchmark
from retain.errors import ConfigError
from retain.registry import import_submodules

import_submodules(__name__, __path__)  # every module registers its benchmarks; a new file needs no listing

from retain.benchmarks.text_custom import text_from_arrays, text_from_hf  # noqa: E402 - after the registrations


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


__all__ = ["BENCHMARKS", "SCENARIOS", "Benchmark", "Experience", "from_arrays", "from_dataset", "from_hf",
           "make_benchmark", "register_benchmark", "text_from_arrays", "text_from_hf"]
