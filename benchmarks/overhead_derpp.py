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
import dataclasses
import statistics
import time

import torch
from minimal import minimal_derpp

from retain.benchmarks import make_benchmark
from retain.config.run import RunConfig
from retain.training.loop import run_experiment


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--tasks", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    params = {"buffer_size": 500, "replay_batch_size": 128, "alpha": 1.0, "beta": 0.5}  # DER paper, P-MNIST
    base = RunConfig(benchmark="permuted-mnist", strategy="derpp", tasks=args.tasks, epochs=1, batch_size=128,
                     lr=0.2, data_dir=args.data_dir, params=params)
    cfg = base.resolve()
    e0 = make_benchmark(cfg.benchmark, tasks=1, data_dir=cfg.data_dir).experiences[0]
    arrays = (e0.train_x, e0.train_y, e0.test_x, e0.test_y)
    times: dict[str, list[float]] = {"retain": [], "minimal": []}
    run_experiment(dataclasses.replace(base, tasks=1))  # warm-up, not timed
    for r in range(args.repeats):
        # Which goes first alternates, so a drift in machine load within a repeat cancels out.
        for which in ("retain", "minimal") if r % 2 == 0 else ("minimal", "retain"):
            t0 = time.perf_counter()
            if which == "retain":
                res = run_experiment(dataclasses.replace(base, seed=r))
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
