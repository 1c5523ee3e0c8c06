"""Learning without Forgetting.

Li & Hoiem, "Learning without Forgetting", ECCV 2016 / TPAMI 2017, https://arxiv.org/abs/1606.09282.

The model at the end of the previous task is kept frozen; on each batch of the new task its
outputs on the *current* inputs are the soft targets of a distillation term at temperature T
over the classes seen before. We use T^2 * KL(p_old^T || p_new^T). The KL has the same gradient
as the paper's soft cross-entropy and is zero when the model still equals the old one. The T^2
factor is ours, not the paper's: the gradient of a temperature-T distillation term shrinks
roughly as 1/T^2, and T^2 undoes that, so ``lwf_alpha`` keeps its meaning whatever T (Hinton et
al. 2015, "Distilling the Knowledge in a Neural Network", arXiv:1503.02531).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from retain.benchmarks.base import Experience
from retain.strategies.base import register_strategy
from retain.strategies.config import StrategyConfig, hp
from retain.strategies.regulariser import Regularised, Regulariser


@dataclass
class LwFConfig(StrategyConfig):
    lwf_alpha: float = hp(1.0, "LwF: weight of the distillation term T^2 * KL(old || new) at temperature T", low=0.0)
    lwf_temperature: float = hp(2.0, "LwF: distillation temperature T; the term is multiplied by T^2 (Hinton et al. "
                                     "2015; not in the LwF paper) so its gradient scale stays about the same "
                                     "whatever T", low=0.0, low_open=True)


def distillation(logits: Tensor, old_logits: Tensor, temperature: float) -> Tensor:
    """T^2 * KL(softmax(old / T) || softmax(new / T)), averaged over the batch."""
    log_p = F.log_softmax(logits / temperature, dim=1)
    log_q = F.log_softmax(old_logits / temperature, dim=1)
    return F.kl_div(log_p, log_q, log_target=True, reduction="batchmean") * temperature**2


class LwFDistillation(Regulariser):
    """alpha * T^2 * KL(old || new) on the current inputs over the classes seen before, the
    teacher being a frozen copy of the model taken at the last task end."""

    data_parallel = True  # the teacher is a copy of identical weights; its term is on the rank's batch

    def __init__(self, model: nn.Module, config: LwFConfig):
        super().__init__(model, config)
        self.old_model: nn.Module | None = None
        self.old_classes: list[int] = []

    def distill_loss(self, x: Tensor, logits: Tensor) -> Tensor:
        if self.old_model is None or not self.old_classes:
            return self.zero()
        with torch.no_grad(), self.autocast():  # the teacher's forward in the run's precision
            old = self.old_model(x)
        cols = torch.tensor(self.old_classes, device=logits.device)
        # The softmaxes and the KL in float32 whatever the precision of the two forward passes.
        return distillation(logits[:, cols].float(), old[:, cols].float(), self.config.lwf_temperature)

    def loss(self, x: Tensor, y: Tensor, logits: Tensor) -> Tensor:
        return self.config.lwf_alpha * self.distill_loss(x, logits)

    def end_task(self, experience: Experience) -> None:
        self.old_model = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.old_classes = sorted(set(self.old_classes) | set(experience.classes))

    def stats(self) -> dict[str, Any]:
        return {"lwf_old_classes": len(self.old_classes)}

    def state_dict(self) -> dict[str, Any]:
        old = self.old_model.state_dict() if self.old_model is not None else {}
        return {"old_model": old, "old_classes": torch.tensor(self.old_classes)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.old_classes = [int(c) for c in state["old_classes"]]
        self.old_model = None
        if state["old_model"]:
            self.old_model = copy.deepcopy(self.model).eval().requires_grad_(False)
            self.old_model.load_state_dict(state["old_model"])


@register_strategy("lwf")
class LwF(Regularised):
    """CE on the new task + alpha * T^2 * KL(old || new) at temperature T, on the old classes.

    The T^2 factor is not in Li & Hoiem's loss; it keeps the distillation gradient's scale
    independent of T, so ``lwf_alpha`` means the same at every temperature. Without it the term
    would be T^2 times weaker (4x at the default T = 2): divide ``lwf_alpha`` by T^2 to compare
    with implementations that leave it out."""

    cost = "a frozen copy of the previous model; one extra forward pass per batch, no data kept"

    Config = LwFConfig
    amp_modes = ("bf16", "fp16")  # the distillation is taken in float32 from the reduced-precision logits
    regulariser = LwFDistillation
    needs_boundaries = True  # the teacher is the model as it was at the last task end
