"""``--logger wandb[:PROJECT]``: one Weights & Biases run per retain run, in project PROJECT
(default $WANDB_PROJECT, else "retain"), grouped by study. Offline unless $WANDB_MODE says
otherwise: the run is written under OUT/wandb/offline-run-*, and ``wandb sync`` uploads it later.
W&B does not capture the terminal and samples no system statistics here.

History: ``train/loss`` against ``train/step`` (per optimiser step); ``accuracy/task_J`` and
``seen/METRIC`` against ``tasks_trained``; ``final/METRIC`` in the run's summary."""

from __future__ import annotations

import os

from retain.loggers.base import Logger, RunInfo, register_logger, require


@register_logger("wandb")
class WandbLogger(Logger):
    """--logger wandb[:PROJECT]: one Weights & Biases run per run (offline by default)."""

    @classmethod
    def prepare(cls, arg: str | None) -> str | None:
        require("wandb", "wandb", "wandb")
        return arg

    def start_run(self, info: RunInfo) -> None:
        wandb = require("wandb", "wandb", "wandb")
        self.out.mkdir(parents=True, exist_ok=True)
        settings = wandb.Settings(silent=True, console="off", x_disable_stats=True, disable_git=True,
                                  save_code=False)
        self.run = wandb.init(project=self.arg or os.environ.get("WANDB_PROJECT") or "retain", name=info.label,
                              group=info.study or None, config={**info.config, "run_key": info.key},
                              dir=str(self.out), mode=os.environ.get("WANDB_MODE", "offline"),
                              reinit="create_new", settings=settings)
        self.run.define_metric("train/step")
        self.run.define_metric("tasks_trained")
        self.run.define_metric("train/loss", step_metric="train/step")
        self.run.define_metric("accuracy/*", step_metric="tasks_trained")
        self.run.define_metric("seen/*", step_metric="tasks_trained")

    def log_steps(self, task: int, first_step: int, losses: list[float]) -> None:
        for i, value in enumerate(losses):
            self.run.log({"train/loss": value, "train/step": first_step + i})

    def log_task(self, task: int, accuracies: list[float], metrics: dict[str, float]) -> None:
        row = {f"accuracy/task_{j}": v for j, v in enumerate(accuracies, start=1)}
        self.run.log({"tasks_trained": task + 1, **row, **{f"seen/{k}": v for k, v in metrics.items()}})

    def end_run(self, status: str, metrics: dict[str, float]) -> None:
        self.run.summary.update({f"final/{k}": v for k, v in metrics.items()})
        self.run.finish(exit_code=0 if status == "finished" else 1)
        self.run = None

    def close(self) -> None:
        if getattr(self, "run", None) is not None:
            self.run.finish(exit_code=1)
            self.run = None
