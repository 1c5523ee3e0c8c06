"""Loggers around one run: the picklable spec the command line makes (``--logger NAME[:ARG]``),
and the group that creates the loggers in the process that runs, calls them from the loop's
after-task hook, and keeps a failing logger from losing the run."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retain.errors import ConfigError
from retain.loggers.base import LOGGERS, Logger, RunInfo
from retain.metrics.matrix import summarize


@dataclass(frozen=True)
class LoggerSpec:
    """A logger to create in each run's process: registered ``name``, its ``arg`` and the output folder."""

    name: str
    arg: str | None = None
    out: str = "."

    def make(self) -> Logger:
        return LOGGERS.get(self.name)(self.arg, out=self.out)

    def __str__(self) -> str:
        return self.name if self.arg is None else f"{self.name}:{self.arg}"


def parse_logger(text: str, out: str | Path = ".") -> LoggerSpec:
    """``NAME[:ARG]`` -> a checked spec: an unknown name, a bad argument or a missing package is
    refused here, in one line, before any run."""
    name, _, arg = text.partition(":")
    if not name:
        raise ConfigError(f"--logger {text!r}: expected NAME[:ARG] (e.g. tensorboard, mlflow:URI)")
    arg = LOGGERS.get(name).prepare(arg or None)
    return LoggerSpec(name, arg, str(Path(out).resolve()))


def metrics_so_far(acc_matrix: list[list[float]], baseline: list[float], train_once: bool = False) -> dict[str, float]:
    """The run's metrics as if it ended after the last row of ``acc_matrix``: over the tasks seen."""
    t = len(acc_matrix)
    seen = np.asarray(acc_matrix, dtype=np.float64)[:, :t]
    if train_once:  # earlier rows are of an untrained model (joint): only the average means anything
        return {"avg_acc": float(seen[-1].mean())}
    return summarize(seen, list(baseline)[:t])


class RunLoggers:
    """The loggers of one run. Used as a context manager around the run and as an after-task
    hook of :func:`retain.training.loop.run_experiment`. A logger that raises is warned about once,
    recorded in :attr:`errors`, and left out for the rest of the run, which goes on."""

    def __init__(self, specs: tuple[LoggerSpec, ...] | list[LoggerSpec], info: RunInfo):
        self.errors: list[str] = []
        self.live: list[tuple[str, Logger]] = []
        self._ended = False
        for spec in specs:
            logger = self._call(str(spec), None, "create", spec.make)
            if logger is not None:
                self.live.append((str(spec), logger))
        self._each("start_run", info)

    def _call(self, name: str, logger: Logger | None, hook: str, fn, *args) -> Any:
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - a logger must never lose the run
            message = f"logger {name}: {hook} failed ({type(exc).__name__}: {exc}); it is off for the rest of this run"
            self.errors.append(message)
            warnings.warn(message, RuntimeWarning, stacklevel=3)
            self.live = [(n, lg) for n, lg in self.live if lg is not logger]
            if logger is not None and hook != "close":
                try:  # let it release its files; its failure was already reported once
                    logger.close()
                except Exception:  # noqa: BLE001, S110
                    pass
            return None

    def _each(self, hook: str, *args) -> None:
        for name, logger in list(self.live):
            self._call(name, logger, hook, getattr(logger, hook), *args)

    def __call__(self, ctx) -> None:
        """After-task hook: the task's per-step losses, then its accuracy row and metrics so far."""
        if not self.live:
            return
        if ctx.step_losses:
            self._each("log_steps", ctx.task, ctx.first_step, ctx.step_losses)
        metrics = metrics_so_far(ctx.acc_matrix, ctx.result.baseline, ctx.strategy.trains_once)
        self._each("log_task", ctx.task, list(ctx.acc_matrix[-1]), metrics)

    def end(self, status: str, metrics: dict[str, float]) -> None:
        self._ended = True
        self._each("end_run", status, dict(metrics))

    def __enter__(self) -> RunLoggers:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._ended:  # the run raised past execute (bad input): still tell the trackers
            self.end("failed", {})
        self._each("close")
