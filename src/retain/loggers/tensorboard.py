"""``--logger tensorboard[:DIR]``: TensorBoard event files written while the run runs, one folder
per run under DIR (default OUT/tensorboard), flushed after every task so that
``tensorboard --logdir DIR`` shows a run as it trains.

Scalars: ``train/loss`` per optimiser step; ``accuracy/task_J`` (accuracy on task J) and
``seen/METRIC`` (the metrics over the tasks seen so far) per task, at step = tasks trained;
``final/METRIC`` when the run ends. The tags match `retain report --tensorboard`'s export."""

from __future__ import annotations

import json
from pathlib import Path

from retain.loggers.base import Logger, RunInfo, register_logger, require


@register_logger("tensorboard")
class TensorBoardLogger(Logger):
    """--logger tensorboard[:DIR]: TensorBoard event files, live (default OUT/tensorboard)."""

    @classmethod
    def prepare(cls, arg: str | None) -> str | None:
        require("tensorboard", "tensorboard", "tensorboard")  # torch's SummaryWriter needs it
        return str(Path(arg).expanduser().resolve()) if arg else None

    def start_run(self, info: RunInfo) -> None:
        require("tensorboard", "tensorboard", "tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.tasks = 0
        root = Path(self.arg) if self.arg else self.out / "tensorboard"
        self.writer = SummaryWriter(log_dir=str(root / info.label))
        self.writer.add_text("config", "```\n" + json.dumps(info.config, indent=1, sort_keys=True) + "\n```")
        self.writer.flush()

    def log_steps(self, task: int, first_step: int, losses: list[float]) -> None:
        for i, value in enumerate(losses):
            self.writer.add_scalar("train/loss", value, global_step=first_step + i)

    def log_task(self, task: int, accuracies: list[float], metrics: dict[str, float]) -> None:
        self.tasks = task + 1
        for j, value in enumerate(accuracies, start=1):
            self.writer.add_scalar(f"accuracy/task_{j}", value, global_step=self.tasks)
        for name, value in metrics.items():
            self.writer.add_scalar(f"seen/{name}", value, global_step=self.tasks)
        self.writer.flush()  # live: the default writer would hold events for up to two minutes

    def end_run(self, status: str, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(f"final/{name}", value, global_step=self.tasks)
        self.writer.add_text("status", status)
        self.writer.flush()

    def close(self) -> None:
        if getattr(self, "writer", None) is not None:
            self.writer.close()
            self.writer = None
