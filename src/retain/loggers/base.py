"""The logger interface: what a tracker (TensorBoard, MLflow, W&B, or one a user writes) receives
while a run runs, and the registry that names them (``retain run --logger NAME[:ARG]``).

A logger is created inside the process that executes the run (a pool worker, a Ray task), from
its name, its argument and the output folder, so it never has to be pickled. The hooks, in order:
``start_run`` once, then per task ``log_steps`` (that task's per-step training losses) and
``log_task`` (its row of the accuracy matrix and the metrics over the tasks seen so far), then
``end_run`` once and ``close`` last. Task indices are 0-based in the run's task order; steps are
counted from 1 over the whole run."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from retain.errors import ConfigError
from retain.registry import Registry


@dataclass(frozen=True)
class RunInfo:
    """What a logger knows about the run it logs: its key, what it runs, and the resolved config
    (the dict the run key hashes)."""

    key: str
    strategy: str
    benchmark: str
    seed: int
    order: int
    config: dict[str, Any] = field(default_factory=dict)
    study: str = ""

    @property
    def label(self) -> str:
        """A file-name-safe name for the run, unique by its key (the one `retain report --tensorboard`
        uses for a run's folder)."""
        name = f"{self.benchmark}-{self.strategy}-s{self.seed}-o{self.order}-{self.key}"
        return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


class Logger:
    """Base class of a logger: every hook does nothing, so a logger overrides only what it needs.

    ``arg`` is the text after the colon of ``--logger NAME:ARG`` (None without one), as returned
    by :meth:`prepare`; ``out`` is the run's output folder, where a logger keeps its files by default."""

    def __init__(self, arg: str | None = None, *, out: str | Path = "."):
        self.arg, self.out = arg, Path(out)

    @classmethod
    def prepare(cls, arg: str | None) -> str | None:
        """Called once at the command line, before any run: raise ConfigError for a bad ``arg`` or a
        missing package; return the argument as the workers should get it (e.g. an absolute path)."""
        return arg

    def start_run(self, info: RunInfo) -> None:
        """The run starts (after its config was validated, before its model is built)."""

    def log_steps(self, task: int, first_step: int, losses: list[float]) -> None:
        """The training loss of every optimiser step of ``task``; ``losses[i]`` is step ``first_step + i``.
        Called once per task, after its training (a task that trains nothing is not reported)."""

    def log_task(self, task: int, accuracies: list[float], metrics: dict[str, float]) -> None:
        """After ``task``'s evaluation: its row of the accuracy matrix (accuracy on every task) and
        the run's metrics over the tasks seen so far (``avg_acc``, ``forgetting``, ...)."""

    def end_run(self, status: str, metrics: dict[str, float]) -> None:
        """The run ended: ``status`` is "finished" (``metrics``: the run's final metrics) or "failed"."""

    def close(self) -> None:
        """Release files and connections; called last, also when the run or a hook raised."""


def require(module: str, logger: str, extra: str) -> ModuleType:
    """Import ``module`` for the logger ``logger``, or refuse in one line naming the pip extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"--logger {logger} needs the {module} package: pip install 'retain[{extra}]'") from None


LOGGERS: Registry[type[Logger]] = Registry("logger")

#: The entry-point group an installed package declares its loggers in (name = logger name,
#: value = "module:LoggerClass").
ENTRY_POINT_GROUP = "retain.loggers"


def register_logger(name: str):
    """Class decorator: make ``name`` usable as ``--logger name[:ARG]``."""

    def decorator(cls: type[Logger]) -> type[Logger]:
        if not (isinstance(cls, type) and issubclass(cls, Logger)):
            raise TypeError(f"logger {name!r} must be a subclass of retain.loggers.Logger, got {cls!r}")
        return LOGGERS.register(name)(cls)

    return decorator


def load_entry_point(name: str, group: str = ENTRY_POINT_GROUP) -> bool:
    """Registry resolver: load the logger ``name`` from an installed package's entry point in
    ``group``; True when it is registered afterwards. The loaded object is a Logger subclass (it is
    registered here) or a module that registers its loggers when imported."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=group):
        if ep.name != name:
            continue
        try:
            obj = ep.load()
        except Exception as exc:  # noqa: BLE001 - any import failure of a plugin is bad input
            raise ConfigError(f"logger {name!r} from entry point {ep.value!r} failed to load: "
                              f"{type(exc).__name__}: {exc}") from None
        if name not in LOGGERS.names() and isinstance(obj, type) and issubclass(obj, Logger):
            LOGGERS.register(name)(obj)
        if name not in LOGGERS.names():
            raise ConfigError(f"entry point {ep.value!r} ({group}) is not a retain Logger subclass "
                              f"and registered no logger {name!r}")
        return True
    return False


LOGGERS.add_resolver(load_entry_point)
