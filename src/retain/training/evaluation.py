"""Evaluation of a model on every task's test set: one row of the accuracy matrix."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from retain.benchmarks.base import Experience


def _class_mask(classes: tuple[int, ...], num_classes: int) -> Tensor:
    mask = torch.full((num_classes,), float("-inf"))
    mask[list(classes)] = 0.0
    return mask


@torch.inference_mode()
def accuracy(model: nn.Module, exp: Experience, *, task_il: bool, num_classes: int,
             batch_size: int = 2048) -> float:
    """Top-1 accuracy on ``exp``'s test set; task-IL restricts the logits to its classes. Each batch
    goes to the model's device in its storage dtype and is transformed there (``exp``'s transform
    must work on that device: see :func:`retain.training.device.experience_on`); the count of
    correct answers stays on the device until the end."""
    device = next(model.parameters()).device
    mask = _class_mask(exp.classes, num_classes).to(device) if task_il else None
    correct, n = torch.zeros((), dtype=torch.int64, device=device), int(exp.test_y.shape[0])
    for i in range(0, n, batch_size):
        x = exp.prepare(exp.test_x[i: i + batch_size].to(device, non_blocking=True))
        logits = model(x)
        if mask is not None:
            logits = logits + mask
        correct += (logits.argmax(1) == exp.test_y[i: i + batch_size].to(device, non_blocking=True)).sum()
    return int(correct) / max(n, 1)


def evaluate_all(model: nn.Module, experiences: list[Experience], *, task_il: bool,
                 num_classes: int) -> list[float]:
    """Accuracy on every task, seen and unseen, with the model in eval mode (restored after). A model
    may name the test rows it scores at once (``eval_batch_size``: a text encoder's attention maps
    grow with it)."""
    was_training = model.training
    model.eval()
    batch = int(getattr(model, "eval_batch_size", 2048))
    try:
        return [accuracy(model, e, task_il=task_il, num_classes=num_classes, batch_size=batch) for e in experiences]
    finally:
        model.train(was_training)
