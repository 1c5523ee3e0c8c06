"""The strategy interface: ``begin_task``, ``observe`` (one optimiser step on one batch) and
``end_task``. The run loop owns data, evaluation and bookkeeping; strategies own their method."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from retain.benchmarks.base import Experience
from retain.registry import Registry
from retain.strategies.config import StrategyConfig

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


class Strategy:
    """Base class: naive fine-tuning with cross-entropy. Subclasses override what they change.

    ``observe`` returns a dict of detached scalar tensors to log (at least ``loss``), never
    floats: converting every step would synchronise and cost time.
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type[StrategyConfig]] = StrategyConfig
    #: True when the method cannot work without task boundaries (it is refused task-free).
    needs_boundaries: ClassVar[bool] = False
    #: What kind of method this is, for advice and grouping: "bound" (naive, cumulative, joint: reference
    #: points, never told to fix themselves), "replay" (keeps past samples), "regularisation",
    #: "adapter", or "other".
    family: ClassVar[str] = "other"
    #: Experimental methods are left out of the default study (opt-in with --strategy).
    experimental: ClassVar[bool] = False
    #: Whether `retain run` without --strategy runs it: only methods that are stable at their
    #: defaults on the default benchmark (tests/test_default_study.py checks 10 seeds) and whose
    #: premise it meets.
    default_study: ClassVar[bool] = True
    #: Run settings (optimizer, lr, ...) this method uses unless the user or a preset sets them,
    #: e.g. the optimizer its paper uses.
    run_defaults: ClassVar[dict[str, Any]] = {}
    #: True for joint training: the loop trains nothing before the last task, then puts the model
    #: back to the run's initial weights (:meth:`reinitialise`) and trains once on every task's
    #: data (:meth:`training_experiences` at the last task). The earlier rows of the accuracy
    #: matrix are of an untrained model, so such a run's metrics hold only ``avg_acc``.
    trains_once: ClassVar[bool] = False
    #: True when ``observe`` passes the current batch and its logits to :meth:`extra_loss` and
    #: the sum to :meth:`step` (or :meth:`backward` and :meth:`after_update`), so regularisers can
    #: be added to it by name (``er+ewc``, :mod:`retain.strategies.compose`).
    accepts_regularisers: ClassVar[bool] = False
    #: What the method does, in one sentence, for the report's comparison table; when a class
    #: leaves it empty its own docstring's first paragraph is used.
    description: ClassVar[str] = ""
    #: What it costs in memory and compute beyond naive fine-tuning, for the same table.
    cost: ClassVar[str] = ""

    def __init__(self, model: nn.Module, config: StrategyConfig, *, make_optimizer: OptimizerFactory,
                 num_classes: int, device: torch.device | str = "cpu"):
        self.model = model
        self.config = config
        self.make_optimizer = make_optimizer
        self.num_classes = num_classes
        self.device = torch.device(device)
        self.optimizer = make_optimizer(p for p in model.parameters() if p.requires_grad)
        self.task = -1
        self.augment: Callable[[Tensor], Tensor] | None = None  # set by the loop before each task

    @classmethod
    def check_benchmark(cls, config: StrategyConfig, benchmark: Any, run: Any) -> None:
        """Refuse, before any run, a configuration that cannot work on the built ``benchmark``
        (raise ConfigError); ``run`` is the resolved run, for its names. Only the strategy knows
        its own hyperparameters, so this check is its own (a replay buffer larger than the data)."""

    # ---- hooks -------------------------------------------------------------------------------
    def begin_task(self, experience: Experience) -> None:
        self.task = experience.task_id

    def set_augmentation(self, augment: Callable[[Tensor], Tensor] | None) -> None:
        """The train-time augmentation of the coming task's inputs (None: none). The loop calls it
        before every task, task-free included. Replay strategies store the non-augmented inputs
        (``observe``'s ``plain``) and pass replayed ones through ``augment`` when they draw them,
        as Mammoth does, so every replay sees a new augmentation."""
        self.augment = augment

    def observe(self, x: Tensor, y: Tensor, task: int, *, plain: Tensor | None = None) -> dict[str, Tensor]:
        """One optimiser step on the batch ``(x, y)`` of ``task``. ``plain`` is ``x`` before
        augmentation, None when the batch was not augmented (then ``x`` is plain already)."""
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        self.step(loss, self.extra_loss(x, y, logits))
        return {"loss": loss.detach()}

    def end_task(self, experience: Experience) -> None:
        pass

    def training_experiences(self, seen: list[Experience]) -> list[Experience]:
        """Which experiences the current task trains on (cumulative and joint: all seen)."""
        return seen[-1:]

    def reinitialise(self, model_state: dict[str, Any]) -> None:
        """Back to ``model_state`` with a fresh optimiser: the re-initialisation of a train-once
        method (subclasses with more learned state reset it too)."""
        self.model.load_state_dict(model_state)
        self.optimizer = self.make_optimizer(p for p in self.model.parameters() if p.requires_grad)

    def stats(self) -> dict[str, Any]:
        """Strategy state worth recording after a task (buffer statistics, counters)."""
        return {}

    def extra_loss(self, x: Tensor, y: Tensor, logits: Tensor) -> Tensor | None:
        """Terms added to the loss of the current task's batch ``(x, y)`` before the optimiser
        step, given the model's logits on ``x``: a regulariser's penalty (EWC, SI, LwF; several
        in a composite such as ``er+ewc``). None: nothing is added."""
        return None

    # ---- helpers -----------------------------------------------------------------------------
    def step(self, loss: Tensor, extra: Tensor | None = None) -> None:
        """One optimiser step on ``loss`` plus ``extra`` (what :meth:`extra_loss` returned)."""
        self.backward(loss, extra)
        self.optimizer.step()
        self.after_update()

    def backward(self, loss: Tensor, extra: Tensor | None = None) -> None:
        """The gradient of ``loss`` plus ``extra`` into ``.grad``, from zero."""
        self.optimizer.zero_grad(set_to_none=True)
        (loss if extra is None else loss + extra).backward()

    def after_update(self) -> None:
        """Called after every optimiser step (a regulariser's bookkeeping, e.g. SI's path integral)."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume at a task boundary (subclasses add their own state)."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "task": self.task}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.task = state["task"]


STRATEGIES: Registry[type[Strategy]] = Registry("strategy")


def register_strategy(name: str):
    """Class decorator: register a Strategy subclass under ``name``."""

    def decorator(cls: type[Strategy]) -> type[Strategy]:
        cls.name = name
        return STRATEGIES.register(name)(cls)

    return decorator
