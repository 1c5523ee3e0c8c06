"""Loggers: per-step losses and per-task metrics sent to a tracker while a run runs
(``retain run --logger tensorboard|mlflow|wandb[:ARG]``; docs/loggers.md). Each is a
:class:`Logger` registered by name, like one a user writes; installed packages add theirs through
the ``retain.loggers`` entry-point group. The trackers' packages are imported only when used."""

from retain.loggers import mlflow, tensorboard, wandb  # noqa: F401 - the built-in loggers register themselves
from retain.loggers.base import ENTRY_POINT_GROUP, LOGGERS, Logger, RunInfo, load_entry_point, register_logger
from retain.loggers.run import LoggerSpec, RunLoggers, metrics_so_far, parse_logger

__all__ = ["ENTRY_POINT_GROUP", "LOGGERS", "Logger", "LoggerSpec", "RunInfo", "RunLoggers", "load_entry_point",
           "metrics_so_far", "parse_logger", "register_logger"]
