"""The plain PyTorch pieces the overhead scripts' hand-written baselines share: the permuted
stream, the MLP with SGD, and the evaluation of one accuracy-matrix row. Deliberately minimal:
no abstraction a user of plain PyTorch would not write."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def permuted_setup(train_x: Tensor, test_x: Tensor, *, tasks: int, hidden: tuple[int, ...], lr: float,
                   seed: int, num_classes: int = 10):
    """Flattened uint8 data, one permutation a task (the first the identity), an MLP, SGD, and
    the generator that shuffles batches."""
    torch.manual_seed(seed)
    d = train_x[0].numel()
    g = torch.Generator().manual_seed(seed)
    perms = [torch.arange(d)] + [torch.randperm(d, generator=g) for _ in range(tasks - 1)]
    layers: list[nn.Module] = []
    width = d
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    model = nn.Sequential(*layers, nn.Linear(width, num_classes))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    return train_x.reshape(len(train_x), -1), test_x.reshape(len(test_x), -1), perms, model, opt, g


@torch.inference_mode()
def accuracy_row(model: nn.Module, test_x: Tensor, test_y: Tensor, perms: list[Tensor], scale: float) -> list[float]:
    """Accuracy on every task's test set (each task a permutation of the same images)."""
    row = []
    for p in perms:
        correct = 0
        for i in range(0, len(test_y), 2048):
            x = test_x[i:i + 2048][:, p].float().mul_(scale)
            correct += int((model(x).argmax(1) == test_y[i:i + 2048]).sum())
        row.append(correct / len(test_y))
    return row
