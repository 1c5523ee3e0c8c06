"""Regularisers as parts: the extra loss term of a regularisation method (EWC's penalty, SI's
path-integral penalty, LwF's distillation) with the bookkeeping it needs at task boundaries and
around optimiser steps, usable by its own strategy and as an add-on to another strategy's step
(:mod:`retain.strategies.compose`: ``er+ewc``).

A :class:`Regulariser` sees the current task's batch and the model's logits on it and returns
its (weighted) term; the strategy adds the terms to its own loss before the optimiser step. A
regulariser that needs the gradient of the *unregularised* loss (SI) sets ``tracks_updates``:
the strategy then back-propagates its own loss first, calls :meth:`Regulariser.before_update`
with that gradient in ``.grad``, adds the terms' gradients, steps, and calls
:meth:`Regulariser.after_update`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from retain.benchmarks.base import Experience
from retain.strategies.base import Strategy
from retain.strategies.config import StrategyConfig


class Regulariser:
    """One regularisation method's loss term and its state, for one model.

    Holds a reference to the model it regularises and its own hyperparameters (the strategy's
    ``Config``); learned state (Fisher, importance, a frozen teacher) is created by its hooks, on
    the model's device and in float32. Its :meth:`loss` is asked for outside autocast (float32);
    ``autocast`` is the run's precision context, for forward passes of its own (LwF's teacher)."""

    #: True when it must see the gradient of the unregularised loss before each optimiser step
    #: and the parameters after it (SI's path integral).
    tracks_updates: ClassVar[bool] = False
    #: Whether its term and state stay the same on every rank of a data-parallel run (``--ddp``): a
    #: statistic of the data is reduced over the ranks (:mod:`retain.distributed`). False until a
    #: regulariser says so, since one that keeps per-rank statistics would make the ranks drift apart.
    data_parallel: ClassVar[bool] = False

    def __init__(self, model: nn.Module, config: StrategyConfig):
        self.model = model
        self.config = config
        #: The strategy's ``--amp`` context (set by :class:`Regularised`); none by default.
        self.autocast: Callable[[], AbstractContextManager] = contextlib.nullcontext

    @property
    def device(self) -> torch.device:
        """Where the model's parameters are (CPU for a model without any)."""
        return next(self.model.parameters(), torch.zeros(())).device

    def zero(self) -> Tensor:
        """A float32 zero on the model's device: the term before there is anything to regularise."""
        return torch.zeros((), device=self.device)

    def float32(self) -> AbstractContextManager:
        """A context with autocast off on the model's device: statistics taken in it are float32."""
        return torch.autocast(self.device.type, enabled=False)

    def on_model(self, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
        """``tensors`` (name -> tensor, e.g. read from a checkpoint) on the model's device."""
        return {n: t.to(self.device) for n, t in tensors.items()}

    def loss(self, x: Tensor, y: Tensor, logits: Tensor) -> Tensor:
        """The weighted term added to the loss of the batch ``(x, y)`` of the current task, whose
        logits (the model's outputs on ``x``) are ``logits``; a zero-dimensional tensor."""
        raise NotImplementedError

    def begin_task(self, experience: Experience) -> None:
        pass

    def end_task(self, experience: Experience) -> None:
        pass

    def before_update(self) -> None:
        """With ``tracks_updates``: ``.grad`` holds the unregularised gradient; parameters not yet stepped."""

    def after_update(self) -> None:
        """With ``tracks_updates``: the optimiser has just stepped."""

    def stats(self) -> dict[str, Any]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class Regularised(Strategy):
    """A strategy whose loss gains the terms of its regularisers (``self.regularisers``, name ->
    :class:`Regulariser`) and which drives their hooks. A regularisation method is naive
    cross-entropy plus its own ``regulariser`` (this class's ``observe``); a composite
    (:mod:`retain.strategies.compose`) puts this class in front of another strategy's."""

    family = "regularisation"
    data_parallel = True  # when its regulariser's is (ddp_support); the terms join the averaged gradient
    #: The regulariser this method adds; a composite has none of its own (it holds its parts').
    regulariser: ClassVar[type[Regulariser] | None] = None

    def __init__(self, model: nn.Module, config: StrategyConfig, **kwargs):
        super().__init__(model, config, **kwargs)
        self.regularisers: dict[str, Regulariser] = self.make_regularisers(config)
        for reg in self.regularisers.values():
            reg.autocast = self.autocast
        self.terms: dict[str, Tensor] = {}  # each regulariser's last term, detached, for logging

    def make_regularisers(self, config: StrategyConfig) -> dict[str, Regulariser]:
        return {self.name: self.regulariser(self.model, config)}

    @classmethod
    def ddp_support(cls) -> tuple[bool, str]:
        ok, why = super().ddp_support()
        if ok and cls.regulariser is not None and not cls.regulariser.data_parallel:
            return False, f"its regulariser {cls.regulariser.__name__} does not declare data_parallel"
        return ok, why

    def extra_loss(self, x: Tensor, y: Tensor, logits: Tensor) -> Tensor | None:
        # Called outside autocast: each term is float32 (a reduced-precision forward inside it
        # is the regulariser's own choice, through its ``autocast``).
        total = None
        for name, reg in self.regularisers.items():
            term = reg.loss(x, y, logits)
            self.terms[name] = term.detach()
            total = term if total is None else total + term
        return total

    def observe(self, x: Tensor, y: Tensor, task: int, *, plain: Tensor | None = None) -> dict[str, Tensor]:
        return super().observe(x, y, task, plain=plain) | self.terms

    def backward(self, loss: Tensor, extra: Tensor | None = None) -> None:
        tracking = [r for r in self.regularisers.values() if r.tracks_updates]
        if not tracking or extra is None:
            return super().backward(loss, extra)
        # Unscaled: a regulariser that reads raw gradients (SI) supports no fp16 (amp_modes), so
        # there is no scaler here.
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward(retain_graph=True)  # a term may share the forward graph (LwF's logits)
        # Data-parallel: the path integral needs the global gradient, so every rank's is the same.
        self.average_gradients()
        for reg in tracking:
            reg.before_update()
        extra.backward()
        # The terms' gradients join the averaged one; averaging again adds their mean over the ranks
        # (a data term such as LwF's differs by rank) and leaves the already averaged part as it is.
        self.average_gradients()

    def after_update(self) -> None:
        super().after_update()
        for reg in self.regularisers.values():
            reg.after_update()

    def begin_task(self, experience: Experience) -> None:
        super().begin_task(experience)
        for reg in self.regularisers.values():
            reg.begin_task(experience)

    def end_task(self, experience: Experience) -> None:
        super().end_task(experience)
        for reg in self.regularisers.values():
            reg.end_task(experience)

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        for reg in self.regularisers.values():
            out |= reg.stats()
        return out

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | self.regulariser_state()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.load_regulariser_state(state)

    def regulariser_state(self) -> dict[str, Any]:
        """The regularisers' part of :meth:`state_dict`: a single method's state sits next to
        the model's, as it always has (checkpoints written before regularisers were parts load)."""
        (reg,) = self.regularisers.values()
        return reg.state_dict()

    def load_regulariser_state(self, state: dict[str, Any]) -> None:
        (reg,) = self.regularisers.values()
        reg.load_state_dict(state)
