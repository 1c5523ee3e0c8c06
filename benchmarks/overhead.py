"""Framework overhead: naive fine-tuning through retain vs a minimal hand-written PyTorch loop.

Both do the same math in one process: uint8 data in memory, a pixel permutation and float
conversion per batch, SGD on an MLP, and after every task an evaluation on every task's test set.
Runs alternate (retain, minimal, retain, ...) so machine noise hits both alike; the ratio of
medians is printed. Goal: retain <= 1.15x the minimal loop.

    python benchmarks/overhead.py --benchmark permuted-digits
    python benchmarks/overhead.py --benchmark permuted-mnist --data-dir ../shared/data/mnist --tasks 20
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch
import torch.nn.functional as F
from minimal import accuracy_row, permuted_setup

from retain.benchmarks import make_benchmark
from retain.config.run import RunConfig
from retain.training.loop import run_experiment


def minimal_loop(train_x, train_y, test_x, test_y, *, tasks, epochs, batch_size, lr, hidden, scale, seed):
    """The plainest loop that computes the same accuracy matrix as retain's naive strategy."""
    train_x, test_x, perms, model, opt, g = permuted_setup(train_x, test_x, tasks=tasks, hidden=hidden, lr=lr,
                                                           seed=seed)
    matrix = []
    for t in range(tasks):
        for _ in range(epochs):
            order = torch.randperm(len(train_y), generator=g)
            for i in range(0, len(order), batch_size):
                idx = order[i:i + batch_size]
                x = train_x[idx][:, perms[t]].float().mul_(scale)
                loss = F.cross_entropy(model(x), train_y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        matrix.append(accuracy_row(model, test_x, test_y, perms, scale))
    return matrix


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--benchmark", default="permuted-digits", choices=("permuted-digits", "permuted-mnist"))
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--tasks", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    base = RunConfig(benchmark=args.benchmark, strategy="naive", tasks=args.tasks, epochs=args.epochs,
                     batch_size=args.batch_size, data_dir=args.data_dir)
    cfg = base.resolve()  # the values the run uses (epochs, batch size, lr, widths)
    bench = make_benchmark(cfg.benchmark, tasks=cfg.tasks, data_dir=cfg.data_dir)
    e0 = bench.experiences[0]
    scale = 1 / 16 if cfg.benchmark == "permuted-digits" else 1 / 255
    arrays = (e0.train_x, e0.train_y, e0.test_x, e0.test_y)
    kw = dict(tasks=len(bench), epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, hidden=cfg.hidden,
              scale=scale)
    times: dict[str, list[float]] = {"retain": [], "minimal": []}
    run_experiment(dataclasses.replace(base, tasks=1))  # warm-up, not timed
    for r in range(args.repeats):
        t0 = time.perf_counter()
        res = run_experiment(dataclasses.replace(base, seed=r))
        times["retain"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        mat = minimal_loop(*arrays, seed=r, **kw)
        times["minimal"].append(time.perf_counter() - t0)
        print(f"repeat {r}: retain {times['retain'][-1]:.2f}s (ACC {res.metrics['avg_acc']:.3f}), "
              f"minimal {times['minimal'][-1]:.2f}s (ACC {sum(mat[-1]) / len(mat[-1]):.3f})")
    ratio = statistics.median(times["retain"]) / statistics.median(times["minimal"])
    print(f"{cfg.benchmark}: {len(bench)} tasks, {cfg.epochs} epoch(s), batch {cfg.batch_size}, "
          f"MLP {'-'.join(map(str, cfg.hidden))}, {args.threads} thread(s)")
    print(f"median retain {statistics.median(times['retain']):.2f}s, minimal "
          f"{statistics.median(times['minimal']):.2f}s, ratio {ratio:.3f} (goal <= 1.15)")


if __name__ == "__main__":
    main()
