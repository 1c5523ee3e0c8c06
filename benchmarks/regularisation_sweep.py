"""Small hyperparameter sweep for the regularisation strategies (docs/results-regularisation.md).

Runs each setting once, on a seed (10) that the reported runs (seeds 0-2) never use and on a
shorter stream (5 tasks), and prints final accuracy and forgetting as JSON lines. There is no
separate validation split: the sweep reads the test sets of its own seed, which is said in the
results page.

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/regularisation_sweep.py \
        --benchmark permuted-mnist --data-dir ../shared/data/mnist ewc:ewc_lambda=1,10,100
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from retain.config.run import RunConfig
from retain.errors import DivergedError
from retain.training.loop import run_experiment


def parse_grid(spec: str) -> tuple[str, dict, str, list[str]]:
    """``strategy[+key=value...]:param=v1,v2`` -> (strategy, fixed params, swept name, values)."""
    head, sweep = spec.split(":")
    strategy, *fixed = head.split("+")
    name, values = sweep.split("=")
    return strategy, dict(f.split("=") for f in fixed), name, values.split(",")


def main() -> None:
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("grids", nargs="+", help="strategy[+k=v]:param=v1,v2,...")
    ap.add_argument("--benchmark", default="permuted-mnist")
    ap.add_argument("--scenario")
    ap.add_argument("--tasks", type=int, default=5)
    ap.add_argument("--seed", type=int, default=10)
    ap.add_argument("--data-dir")
    ap.add_argument("--optimizer", default="sgd")
    ap.add_argument("--lr", type=float, help="default: the benchmark's")
    ap.add_argument("--task-free", action="store_true")
    args = ap.parse_args()
    for spec in args.grids:
        strategy, fixed, name, values = parse_grid(spec)
        for v in values:
            params = {**fixed, name: v}
            cfg = RunConfig(benchmark=args.benchmark, strategy=strategy, tasks=args.tasks, seed=args.seed,
                            scenario=args.scenario, data_dir=args.data_dir, params=params,
                            optimizer=args.optimizer, lr=args.lr, task_free=args.task_free).resolve()
            t0 = time.perf_counter()
            try:
                m = run_experiment(cfg).metrics
                row = {k: round(m[k], 4) for k in ("avg_acc", "forgetting", "learning_acc")}
            except DivergedError:
                row = {"diverged": True}
            print(json.dumps({"strategy": strategy, "params": params, "optimizer": cfg.optimizer, "lr": cfg.lr, **row,
                              "seconds": round(time.perf_counter() - t0, 1)}), flush=True)


if __name__ == "__main__":
    main()
