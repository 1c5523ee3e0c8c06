"""Export runs as TensorBoard event files, one folder per run: the accuracy on each task and the
average accuracy after each task (step = tasks trained), and the run's final metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from retain.errors import ConfigError
from retain.metrics.matrix import average_accuracy_curve
from retain.metrics.registry import metrics_of


def _writer(logdir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch's writer needs the tensorboard package
        raise ConfigError("--tensorboard needs TensorBoard: pip install 'retain[tensorboard]'") from None
    return SummaryWriter(log_dir=str(logdir))


def run_dir(run: dict[str, Any]) -> str:
    name = f"{run['benchmark']}-{run['strategy']}-s{run['seed']}-o{run['config'].get('order', 0)}-{run['run_key']}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def export(runs: list[dict[str, Any]], root: str | Path) -> list[Path]:
    """Write one event-file folder per run under ``root``; returns the folders."""
    root = Path(root)
    dirs = []
    for run in runs:
        logdir = root / run_dir(run)
        w = _writer(logdir)
        try:
            R = run.acc_matrix
            for i, row in enumerate(R, start=1):
                for j, value in enumerate(row, start=1):
                    w.add_scalar(f"accuracy/task_{j}", value, global_step=i)
            for i, value in enumerate(average_accuracy_curve(R) if R else [], start=1):
                w.add_scalar("accuracy/average_seen", value, global_step=i)
            for name, value in metrics_of(run).items():  # every registered metric, from the matrix
                w.add_scalar(f"final/{name}", value, global_step=len(R))
            w.add_text("config", "```\n" + json.dumps(run.config, indent=1, sort_keys=True) + "\n```")
        finally:
            w.close()
        dirs.append(logdir)
    return dirs
