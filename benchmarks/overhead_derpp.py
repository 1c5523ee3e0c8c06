"""Replay overhead: DER++ through retain vs the same math in a minimal hand-written PyTorch loop.

Both run in one process on the same data: uint8 MNIST in memory, a pixel permutation and float
conversion per batch, an MLP trained with SGD, a reservoir buffer of inputs, labels and logits
(Algorithm R, vectorised per batch), two independent buffer draws per step (MSE on stored logits,
CE on stored labels), and after every task an evaluation on every task's test set. Runs alternate
(retain, minimal, minimal, retain, ...) so machine noise hits both alike; the ratio of medians is printed.
Goal: retain <= 1.15x the minimal loop.

    python benchmarks/overhead_derpp.py --data-dir ../shared/data/mnist            # P-MNIST, 20 tasks
    python benchmarks/overhead_derpp.py --data-dir ../shared/data/mnist --tasks 5  # a shorter check
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from minimal import accuracy_row, permuted_setup

from retain.benchmarks import make_benchmark
from retain.loop import run_experiment
from retain.runconfig import RunConfig


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--tasks", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    params = {"buffer_size": 500, "replay_batch_size": 128, "alpha": 1.0, "beta": 0.5}  # DER paper, P-MNIST
    cfg = RunConfig(benchmark="permuted-mnist", strategy="derpp", tasks=args.tasks, epochs=1, batch_size=128,
                    lr=0.2, data_dir=args.data_dir, params=params).validate()
    e0 = make_benchmark(cfg.benchmark, tasks=1, data_dir=cfg.data_dir).experiences[0]
    arrays = (e0.train_x, e0.train_y, e0.test_x, e0.test_y)
    times: dict[str, list[float]] = {"retain": [], "minimal": []}
    run_experiment(RunConfig(**{**cfg.to_dict(), "hidden": cfg.hidden, "tasks": 1}))  # warm-up, not timed
    for r in range(args.repeats):
        # Which goes first alternates, so a drift in machine load within a repeat cancels out.
        for which in ("retain", "minimal") if r % 2 == 0 else ("minimal", "retain"):
            t0 = time.perf_counter()
            if which == "retain":
                res = run_experiment(RunConfig(**{**cfg.to_dict(), "hidden": cfg.hidden, "seed": r}))
            else:
                mat = minimal_derpp(*arrays, tasks=args.tasks, batch_size=128, lr=0.2, hidden=cfg.hidden, seed=r,
                                    **params)
            times[which].append(time.perf_counter() - t0)
        print(f"repeat {r}: retain {times['retain'][-1]:.2f}s (ACC {res.metrics['avg_acc']:.4f}), "
              f"minimal {times['minimal'][-1]:.2f}s (ACC {sum(mat[-1]) / len(mat[-1]):.4f})", flush=True)
    ratio = statistics.median(times["retain"]) / statistics.median(times["minimal"])
    print(f"permuted-mnist DER++: {args.tasks} tasks, 1 epoch, batch 128, replay 128, buffer 500, MLP 100-100, "
          f"{args.threads} thread(s)")
    print(f"median retain {statistics.median(times['retain']):.2f}s, minimal "
          f"{statistics.median(times['minimal']):.2f}s, ratio {ratio:.3f} (goal <= 1.15)")


if __name__ == "__main__":
    main()
