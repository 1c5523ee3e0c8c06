"""The plain PyTorch pieces the overhead scripts' hand-written baselines share: the permuted
stream, the MLP with SGD, and the evaluation of one accuracy-matrix row. Deliberately minimal:
no abstraction a user of plain PyTorch would not write."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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


class InlineReservoir:
    """Algorithm R over preallocated tensors, written out inline: the hand-written baseline."""

    def __init__(self, size: int, dim: int, classes: int, seed: int):
        self.x, self.y = torch.zeros(size, dim), torch.zeros(size, dtype=torch.int64)
        self.z, self.size, self.seen = torch.zeros(size, classes), size, 0
        self.g = torch.Generator().manual_seed(seed)

    def add(self, x, y, z):
        n = torch.arange(self.seen, self.seen + len(y))
        j = (torch.rand(len(y), generator=self.g, dtype=torch.float64) * (n + 1)).long()
        slot = torch.where(n < self.size, n, j)
        keep = slot < self.size  # (duplicate slots in a batch: one write lands; a timing baseline only)
        self.x[slot[keep]], self.y[slot[keep]], self.z[slot[keep]] = x[keep], y[keep], z[keep]
        self.seen += len(y)

    def sample(self, k):
        idx = torch.randperm(min(self.seen, self.size), generator=self.g)[:k]
        return self.x[idx], self.y[idx], self.z[idx]


def minimal_derpp(train_x, train_y, test_x, test_y, *, tasks, batch_size, lr, hidden, buffer_size,
                  replay_batch_size, alpha, beta, seed):
    train_x, test_x, perms, model, opt, g = permuted_setup(train_x, test_x, tasks=tasks, hidden=hidden, lr=lr,
                                                           seed=seed)
    buf = InlineReservoir(buffer_size, train_x.shape[1], 10, seed)
    matrix = []
    for t in range(tasks):
        order = torch.randperm(len(train_y), generator=g)
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            x, y = train_x[idx][:, perms[t]].float().mul_(1 / 255), train_y[idx]
            out = model(x)
            loss = F.cross_entropy(out, y)
            if buf.seen:
                bx, _, bz = buf.sample(replay_batch_size)
                loss = loss + alpha * F.mse_loss(model(bx), bz)
                bx, by, _ = buf.sample(replay_batch_size)
                loss = loss + beta * F.cross_entropy(model(bx), by)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            buf.add(x, y, out.detach())
        matrix.append(accuracy_row(model, test_x, test_y, perms, 1 / 255))
    return matrix
