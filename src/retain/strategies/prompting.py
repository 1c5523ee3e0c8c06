"""What the prompt methods (L2P, CODA-Prompt) share: a frozen ViT read in steps, the frozen
model's [CLS] feature as the query, a fresh optimiser per task over the prompts and the head, and
cross-entropy on a masked label space during training.

The backbone must expose ``embed(x)`` (tokens, [CLS] first), ``run_layers(tokens, prefixes)``,
``final_norm`` and ``features`` (:class:`retain.models.hf.HFViT`: ``hf:DIR``, ``hf:MODEL_ID``,
``hf-vit``). Without ``--backbone`` these methods use ``hf-vit``, a transformers ViT with random
weights, which runs but is not their premise: give them a pretrained one (``retain pretrain``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from retain.benchmarks.base import Experience
from retain.errors import ConfigError
from retain.strategies.base import Strategy

NEEDED = ("embed", "run_layers", "final_norm", "features")


def check_vit(name: str, model: nn.Module) -> nn.Module:
    """``model`` if it can be prompted; ConfigError naming what it lacks otherwise."""
    missing = [m for m in NEEDED if not callable(getattr(model, m, None))]
    if missing or not isinstance(getattr(model, "head", None), nn.Linear):
        raise ConfigError(f"{name} needs a ViT backbone read in steps (hf:DIR, hf:MODEL_ID or hf-vit); "
                          f"{type(model).__name__} lacks {', '.join(missing) or 'a linear head'}")
    return model


def freeze_all_but_head(backbone: nn.Module) -> None:
    backbone.requires_grad_(False)
    backbone.head.requires_grad_(True)


class SeenClasses(nn.Module):
    """The classes trained so far, as a mask (a buffer: saved with the model). The logits of other
    classes are -inf: their head rows were never trained against the others (training masks them),
    so they must not win at test time. No task identity is used (CODA's code does the same)."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.register_buffer("mask", torch.zeros(num_classes, dtype=torch.bool))

    def add(self, classes: Iterable[int]) -> None:
        self.mask[list(classes)] = True

    def forward(self, logits: Tensor) -> Tensor:
        return logits.masked_fill(~self.mask, float("-inf")) if bool(self.mask.any()) else logits


@torch.no_grad()
def frozen_query(backbone: nn.Module, x: Tensor) -> Tensor:
    """The frozen model's final [CLS] feature (no prompts): the key-matching query of L2P and CODA."""
    return backbone.features(x)


def keep_only(logits: Tensor, classes: Iterable[int], *, drop: bool = False) -> Tensor:
    """``logits`` with -inf outside ``classes`` (or, with ``drop``, on ``classes``)."""
    mask = torch.zeros(logits.shape[1], dtype=torch.bool, device=logits.device)
    mask[list(classes)] = True
    return logits.masked_fill(mask if drop else ~mask, float("-inf"))


class PromptStrategy(Strategy):
    """Base of the prompt methods: task-aware training of prompts and head on a frozen ViT."""

    needs_boundaries = True  # the training mask and (CODA) the growing pool follow the tasks
    family = "adapter"
    default_study = False  # their premise is a pretrained ViT, which the default benchmark lacks
    modalities = ("image",)
    modality_note = "its prompts are patch tokens of a ViT read in steps (hf:DIR of a ViT, or hf-vit)"
    #: Adam, the papers' optimiser, at a rate that suits it; a transformers ViT, since prompts need tokens.
    run_defaults: ClassVar[dict[str, Any]] = {"optimizer": "adam", "lr": 0.01, "backbone": "hf-vit"}

    def __init__(self, model: nn.Module, config, **kwargs):
        super().__init__(self.wrap(check_vit(self.name, model), config, kwargs["num_classes"]), config, **kwargs)
        self.current: tuple[int, ...] = ()
        self.seen: list[int] = []
        self.past: list[int] = []

    def wrap(self, backbone: nn.Module, config, num_classes: int) -> nn.Module:
        """The model the run trains and evaluates: ``backbone`` frozen, with the method's prompts and
        a :class:`SeenClasses` module ``seen`` applied to its logits."""
        raise NotImplementedError

    def trainable(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def begin_task(self, experience: Experience) -> None:
        super().begin_task(experience)
        self.past = list(self.seen)
        self.current = tuple(experience.classes)
        self.seen += [c for c in experience.classes if c not in self.seen]
        self.model.seen.add(experience.classes)
        self.optimizer = self.make_optimizer(self.trainable())  # a fresh one per task, as both papers' code

    def step(self, loss: Tensor, extra: Tensor | None = None) -> None:
        """Backward, clip the gradient norm to ``grad_clip`` (when > 0), optimiser step."""
        self.backward(loss, extra)
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.trainable(), self.config.grad_clip)
        self.optimizer.step()
        self.after_update()

    def cross_entropy(self, logits: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(self.train_mask(logits), y)

    def train_mask(self, logits: Tensor) -> Tensor:
        """The training label space (L2P: the current task's classes; CODA: all but past tasks')."""
        return logits

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"seen": list(self.seen), "past": list(self.past), "current": list(self.current)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer = self.make_optimizer(self.trainable())  # shaped like the saved one
        super().load_state_dict(state)
        self.seen, self.past, self.current = list(state["seen"]), list(state["past"]), tuple(state["current"])
