"""The strategy interface: ``begin_task``, ``observe`` (one optimiser step on one batch) and
``end_task``. The run loop owns data, evaluation and bookkeeping; strategies own their method."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from retain.benchmarks.base import Experience
from retain.distributed import average_gradients
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
    #: premise it meets. A plugin's strategy is out unless its own class sets it True
    #: (`retain.cli.run.in_default_study`).
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
    #: Mixed precisions (``--amp``) this class's ``observe`` supports: it runs its forward passes and
    #: losses inside :meth:`autocast` and steps with :meth:`step` (or unscales as fp16 needs). A
    #: subclass that overrides ``observe`` supports none until it declares its own (see amp_support).
    amp_modes: ClassVar[tuple[str, ...]] = ("bf16", "fp16")
    #: Why a precision the class leaves out of ``amp_modes`` cannot work, for the error message.
    amp_note: ClassVar[str] = ""
    #: Whether ``observe`` works data-parallel (``--ddp``): it takes gradients through :meth:`backward`
    #: (which averages them over the ranks) and reduces any other statistic of the data it steps with
    #: (:mod:`retain.distributed`). Counts only when declared by the class that defines ``observe`` or a
    #: subclass of it, as ``amp_modes`` does.
    data_parallel: ClassVar[bool] = True
    #: Why the class does not support data-parallel training, for the error message.
    ddp_note: ClassVar[str] = ""
    #: The kinds of benchmark input it works on ("image", "text"); another kind is refused before any run.
    modalities: ClassVar[tuple[str, ...]] = ("image", "text")
    #: Why it does not take the kinds it leaves out, for that message.
    modality_note: ClassVar[str] = ""

    def __init__(self, model: nn.Module, config: StrategyConfig, *, make_optimizer: OptimizerFactory,
                 num_classes: int, device: torch.device | str = "cpu", amp: str | None = None):
        self.device = torch.device(device)
        self.model = model.to(self.device)  # before the optimiser is made, so its state lives there too
        self.config = config
        self.make_optimizer = make_optimizer
        self.num_classes = num_classes
        self.amp = amp
        # fp16 needs loss scaling (its gradients underflow); bf16 has float32's range and does not.
        self.scaler = torch.amp.GradScaler(self.device.type) if amp == "fp16" else None
        self.optimizer = make_optimizer(p for p in model.parameters() if p.requires_grad)
        self.task = -1
        self.augment: Callable[[Tensor], Tensor] | None = None  # set by the loop before each task

    @classmethod
    def _declares_for_observe(cls, attribute: str) -> bool:
        """Whether ``attribute`` is declared by the class that defines ``observe`` or a subclass of it."""
        owner = next(k for k in cls.__mro__ if "observe" in vars(k))
        declared = next(k for k in cls.__mro__ if attribute in vars(k))
        return issubclass(declared, owner)

    @classmethod
    def amp_support(cls) -> tuple[tuple[str, ...], str]:
        """(precisions ``observe`` supports, why others are refused). ``amp_modes`` counts only when
        declared by the class that defines ``observe`` or a subclass of it: a strategy that writes
        its own ``observe`` and says nothing supports no mixed precision, so ``--amp`` is refused
        for it rather than silently ignored."""
        if not cls._declares_for_observe("amp_modes"):
            return (), f"{cls.__name__} defines its own observe and declares no amp_modes"
        return cls.amp_modes, cls.amp_note or "its observe does not support that precision"

    @classmethod
    def ddp_support(cls) -> tuple[bool, str]:
        """(whether it trains data-parallel, why not). Like :meth:`amp_support`: a strategy that writes
        its own ``observe`` and does not declare ``data_parallel`` is refused under ``--ddp``, since its
        ranks' weights could drift apart silently."""
        if not cls._declares_for_observe("data_parallel"):
            return False, f"{cls.__name__} defines its own observe and does not declare data_parallel"
        return cls.data_parallel, "" if cls.data_parallel else cls.ddp_note or "it declares data_parallel = False"

    @classmethod
    def check_ddp(cls, config: StrategyConfig, world: int) -> None:
        """Refuse hyperparameters that cannot be split over ``world`` ranks (raise ConfigError), e.g. a
        replay buffer that does not divide evenly."""

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
        with self.autocast():
            logits = self.model(x)
            loss = F.cross_entropy(logits, y)
        self.step(loss, self.extra_loss(x, y, logits))  # the terms choose their own precision
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
    def autocast(self):
        """The context to run forward passes and losses in: autocast to the run's ``--amp`` precision
        on its device, or nothing for a float32 run. Statistics that must stay float32 (Fisher,
        path integrals, gradient projections, regularisers' penalties) are computed outside it."""
        if self.amp is None:
            return contextlib.nullcontext()
        from retain.training.device import AMP_DTYPES

        return torch.autocast(self.device.type, dtype=AMP_DTYPES[self.amp])

    def step(self, loss: Tensor, extra: Tensor | None = None) -> None:
        """One optimiser step on ``loss`` plus ``extra`` (what :meth:`extra_loss` returned); with
        fp16, through the gradient scaler (a step whose gradients overflowed is skipped and the
        scale lowered)."""
        self.backward(loss, extra)
        if self.scaler is None:
            self.optimizer.step()
        else:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.after_update()

    def backward(self, loss: Tensor, extra: Tensor | None = None) -> None:
        """The gradient of ``loss`` plus ``extra`` into ``.grad``, from zero (scaled with fp16), averaged
        over the ranks of a data-parallel run."""
        self.optimizer.zero_grad(set_to_none=True)
        total = loss if extra is None else loss + extra
        (total if self.scaler is None else self.scaler.scale(total)).backward()
        self.average_gradients()

    def average_gradients(self) -> None:
        """Data-parallel: every ``.grad`` becomes its mean over the ranks (nothing with one rank)."""
        average_gradients(self.model.parameters())

    def after_update(self) -> None:
        """Called after every optimiser step (a regulariser's bookkeeping, e.g. SI's path integral)."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume at a task boundary (subclasses add their own state)."""
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "task": self.task}
        return state | ({"scaler": self.scaler.state_dict()} if self.scaler is not None else {})

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.task = state["task"]
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])


STRATEGIES: Registry[type[Strategy]] = Registry("strategy")


def register_strategy(name: str):
    """Class decorator: register a Strategy subclass under ``name``."""

    def decorator(cls: type[Strategy]) -> type[Strategy]:
        cls.name = name
        return STRATEGIES.register(name)(cls)

    return decorator
