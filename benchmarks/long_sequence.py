"""Long task sequences: does the cost per task stay flat over 100+ tasks, and does learning
accuracy (plasticity) hold up? Prints, per strategy, the ratio of the mean time of the last 10
tasks to tasks 1-10 (train time alone, evaluation alone, probes alone, and all together), the
resident memory of the last 10 tasks over the first 10, and the plasticity probes at the start
and the end of the sequence.

The loop evaluates every task (seen and unseen) after each task, so evaluation costs T task
evaluations per task from the first task on: O(T^2) over a run, but flat per task, and measured
flat here. The ratio checked against 1.2 is the CPU time of this process per task (train +
evaluation + probes), because wall-clock time on a shared machine moves with other jobs; the
wall-clock ratios of train, evaluation and probes are printed too.

    python benchmarks/long_sequence.py                       # 100 permuted-digits tasks: naive, ewc, er
    python benchmarks/long_sequence.py --strategy naive --optimizer adam --lr 0.01 --redo
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from retain.config.run import RunConfig
from retain.diagnostics.probes import make_probe_hooks
from retain.plasticity.flags import add_plasticity_flags, plasticity_options
from retain.strategies import STRATEGIES
from retain.training.loop import run_experiment

#: Online EWC (one running Fisher, one anchor). lambda 100 diverges at lr 0.1 on permuted digits and
#: gamma 1 lets the Fisher grow 100-fold over 100 tasks, so the sequence uses lambda 1, gamma 0.9.
STRATEGY_PARAMS = {"ewc": {"online": True, "ewc_lambda": 1.0, "gamma": 0.9}, "er": {}}


def rss_mb() -> float:
    """Current resident memory of this process (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _kv(text: str) -> tuple[str, object]:
    """KEY=VALUE; the value stays a string: each strategy reads it by its field's type."""
    key, _, val = text.partition("=")
    return key.replace("-", "_"), val


def ratio(values: list[float], k: int = 10) -> float:
    """Mean of the last k over tasks 1..k: task 0 also pays one-off costs (lazy imports, first
    calls), which are not a property of the sequence's length."""
    return float(np.mean(values[-k:]) / max(np.mean(values[1:k + 1]), 1e-12))


def run_one(strategy: str, args: argparse.Namespace) -> dict:
    cfg = RunConfig(benchmark=args.benchmark, strategy=strategy, tasks=args.tasks, epochs=args.epochs,
                    lr=args.lr, optimizer=args.optimizer, seed=args.seed, data_dir=args.data_dir,
                    params={**STRATEGY_PARAMS.get(strategy, {}), **dict(_kv(v) for v in args.param or [])},
                    plasticity=plasticity_options(args))
    mem: list[float] = []
    cpu: list[float] = [time.process_time()]  # CPU time of this process: robust to a busy machine
    hooks = [*make_probe_hooks(), lambda ctx: (mem.append(rss_mb()), cpu.append(time.process_time()))]
    t0 = time.perf_counter()
    res = run_experiment(cfg, after_task=hooks)
    wall = time.perf_counter() - t0
    probe = [p["probe_seconds"] for p in res.probes]
    total = [a + b + c for a, b, c in zip(res.task_seconds, res.eval_seconds, probe)]
    first, last = res.probes[:10], res.probes[-10:]
    mean = lambda rows, k: float(np.mean([r.get(k, float("nan")) for r in rows]))
    return {
        "strategy": strategy, "tasks": len(res.acc_matrix), "wall_s": round(wall, 1),
        "train_ratio": ratio(res.task_seconds), "eval_ratio": ratio(res.eval_seconds),
        "probe_ratio": ratio(probe), "total_ratio": ratio(total), "mem_ratio": ratio(mem),
        "cpu_ratio": ratio(list(np.diff(cpu))), "cpu_s_per_task_first10": float(np.mean(np.diff(cpu)[1:11])),
        "train_s_per_task_first10": float(np.mean(res.task_seconds[1:11])),
        "eval_s_per_task_last10": float(np.mean(res.eval_seconds[-10:])),
        "probe_s_per_task_last10": float(np.mean(probe[-10:])),
        "rss_mb_first10": float(np.mean(mem[:10])), "rss_mb_last10": float(np.mean(mem[-10:])),
        "learning_acc_first10": mean(first, "learning_acc"), "learning_acc_last10": mean(last, "learning_acc"),
        "dormant_first10": mean(first, "dormant_redo"), "dormant_last10": mean(last, "dormant_redo"),
        "erank_first10": mean(first, "erank"), "erank_last10": mean(last, "erank"),
        "avg_acc": res.metrics["avg_acc"], "events": sorted({e["kind"] for e in res.events}),
        "per_task": {"cpu_s": list(np.diff(cpu)), "train_s": res.task_seconds, "eval_s": res.eval_seconds,
                     "probe_s": probe, "rss_mb": mem, "learning_acc": [p["learning_acc"] for p in res.probes],
                     "dormant_redo": [p.get("dormant_redo") for p in res.probes]},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--benchmark", default="permuted-digits")
    p.add_argument("--tasks", type=int, default=100)
    p.add_argument("--strategy", action="append", help="repeatable (default: naive, ewc (online), er)")
    p.add_argument("--epochs", type=int, default=5, help="epochs a task (default 5, as measured)")
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", default="sgd", choices=("sgd", "adam"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=os.environ.get("RETAIN_DATA"))
    p.add_argument("--json", help="also write the rows here")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="strategy hyperparameter, repeatable")
    add_plasticity_flags(p)
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = []
    for s in args.strategy or ["naive", "ewc", "er"]:
        if s not in STRATEGIES:
            print(f"{s}: not registered in this checkout, skipped")
            continue
        row = run_one(s, args)
        rows.append(row)
        ok = "OK" if row["cpu_ratio"] <= 1.2 and row["mem_ratio"] <= 1.2 else "NOT FLAT"
        print(f"{s:>6}: {row['tasks']} tasks in {row['wall_s']} s | last10/first10 CPU time a task "
              f"(train + eval + probes) {row['cpu_ratio']:.2f} | wall: train {row['train_ratio']:.2f} "
              f"eval {row['eval_ratio']:.2f} probes {row['probe_ratio']:.2f} all {row['total_ratio']:.2f} "
              f"memory {row['mem_ratio']:.2f} ({row['rss_mb_first10']:.0f} -> {row['rss_mb_last10']:.0f} MB) {ok}")
        print(f"{'':>8}seconds a task: CPU {row['cpu_s_per_task_first10']:.3f} (first 10), wall train "
              f"{row['train_s_per_task_first10']:.3f} (first 10), last 10: "
              f"eval {row['eval_s_per_task_last10']:.3f} probes {row['probe_s_per_task_last10']:.3f}")
        print(f"{'':>8}learning acc {row['learning_acc_first10']:.3f} -> {row['learning_acc_last10']:.3f}, "
              f"dormant {row['dormant_first10']:.3f} -> {row['dormant_last10']:.3f}, "
              f"erank {row['erank_first10']:.1f} -> {row['erank_last10']:.1f}, final avg acc {row['avg_acc']:.3f}, "
              f"events {row['events']}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
