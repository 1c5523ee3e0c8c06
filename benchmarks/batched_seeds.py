"""Batched seeds: N sequential runs vs one ensemble of N (retain.ensemble), in one invocation.

The DER paper's P-MNIST protocol (``--preset der-pmnist``: 20 tasks, MLP 100-100, batch 128, one
epoch, SGD with each method's lr; DER++ with buffer 500) for each strategy and each N: the N runs
of seeds 0..N-1 one after another (``run_experiment``, as `retain run --no-batch-seeds
--workers 1` runs them), then the same N as one ensemble (``run_ensemble``), or the other way
round on alternate N so a drift in machine load hits both alike. Neither side runs the
diagnostics probes (the same per-member cost on both sides). Both sides use the same number of
torch threads (``--threads``, default 1; this machine's torch default is one per core); the data
are loaded once, before any timing. Prints, per strategy and N, both times, their ratio, the time
each side spent training and evaluating, each side's peak resident memory (VmHWM, reset before
each side) and the mean final accuracy of each side with the sequential runs' spread, plus the
load average before and after. On a shared machine wall-clock times swing with the other
processes' load, so the ratio of CPU times (``time.process_time``: the work this process did, on
all its threads) is printed too. This VM's speed also drifts by 20-40 % over minutes, so
``--repeats R`` times both sides R times, flipping their order each time, and reports the median
of the R ratios (each repeat's ratio is printed).

    OMP_NUM_THREADS=1 python benchmarks/batched_seeds.py --data-dir ../shared/data/mnist
    python benchmarks/batched_seeds.py --data-dir ../shared/data/mnist --threads 2 --members 1,3,5,10
    OMP_NUM_THREADS=1 python benchmarks/batched_seeds.py --strategies derpp --members 5 --tasks 5
    python benchmarks/batched_seeds.py --threads 2 --strategies naive,derpp --members 5 --repeats 3
    python benchmarks/batched_seeds.py --device cuda --members 1,5,10   # on a GPU (both sides there)

On a GPU (``--device cuda``) both sides run there and each row adds the peak memory torch
allocated on the device; ``retain run`` itself still trains accelerator runs one by one until this
has been measured (retain.ensemble.support).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from retain.config.presets import load_preset, preset_values
from retain.config.run import RunConfig
from retain.ensemble.loop import run_ensemble
from retain.errors import ConfigError
from retain.training.loop import run_experiment
from retain.training.peak_memory import PeakMemory


def specs(strategy: str, n: int, tasks: int, data_dir: str | None, device: str = "cpu"):
    kwargs, params, _ = preset_values(load_preset("der-pmnist"), strategy, {}, {})
    kwargs["tasks"] = tasks
    return [RunConfig(strategy=strategy, seed=s, params=params, data_dir=data_dir, device=device, **kwargs).resolve()
            for s in range(n)]


def timed(fn):
    memory = PeakMemory()
    memory.start()
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0, memory.peak_mb()


def measure(strategy: str, n: int, tasks: int, data_dir: str | None, batched_first: bool, device: str,
            repeats: int = 1) -> dict:
    """Both sides ``repeats`` times, the order flipped at each repeat (sequential-batched, then
    batched-sequential, ...: a drift in the machine's speed that is linear in time hits both sides
    alike over a pair of repeats). Each repeat gives one ratio; the row reports their median, and
    each side's figures from the repeat with the median ratio."""
    cfgs = specs(strategy, n, tasks, data_dir, device)
    sides = {"sequential": lambda: [run_experiment(c) for c in cfgs], "batched": lambda: run_ensemble(cfgs)}
    repeated = []
    for r in range(repeats):
        out, first = {}, batched_first != (r % 2 == 1)
        for side in (("batched", "sequential") if first else ("sequential", "batched")):
            results, seconds, cpu, peak = timed(sides[side])
            accs = [res.metrics["avg_acc"] for res in results]
            # Training and evaluation time, summed over the runs (an ensemble member's are its 1/N share).
            train, evaluation = (sum(sum(getattr(res, f)) for res in results) for f in ("task_seconds", "eval_seconds"))
            device_peaks = [res.peak_device_mem_mb for res in results if res.peak_device_mem_mb is not None]
            out[side] = {"seconds": seconds, "cpu_seconds": cpu, "peak_mb": peak, "avg_acc": accs,
                         "train_seconds": train, "eval_seconds": evaluation,
                         "device_peak_mb": max(device_peaks) if device_peaks else None}
        out["ratio"] = out["batched"]["seconds"] / out["sequential"]["seconds"]
        out["cpu_ratio"] = out["batched"]["cpu_seconds"] / out["sequential"]["cpu_seconds"]
        repeated.append(out)
    ratios = [o["ratio"] for o in repeated]
    middle = repeated[ratios.index(statistics.median_low(ratios))]
    seq = middle["sequential"]["avg_acc"]
    return {"strategy": strategy, "members": n, "tasks": tasks, **middle, "ratios": ratios,
            "acc_mean_seq": statistics.mean(seq), "acc_mean_batched": statistics.mean(middle["batched"]["avg_acc"]),
            "acc_spread_seq": (min(seq), max(seq))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=os.environ.get("RETAIN_DATA", "../shared/data/mnist"))
    ap.add_argument("--tasks", type=int, default=20)
    ap.add_argument("--members", default="1,3,5,10", help="ensemble sizes N, comma separated")
    ap.add_argument("--strategies", default="derpp,naive,ewc")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:i]: where both sides train")
    ap.add_argument("--repeats", type=int, default=1,
                    help="time both sides this many times, flipping their order each time; report the median ratio")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    try:
        RunConfig(device=args.device).resolve()
    except ConfigError as exc:
        raise SystemExit(f"batched_seeds: {exc}") from None
    run_experiment(specs("naive", 1, 1, args.data_dir, args.device)[0])  # loads the data and warms up; not timed
    load_before = os.getloadavg()
    rows = []
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}; "
          f"{args.threads} torch thread(s); {args.tasks} tasks; device {args.device}", flush=True)
    for strategy in args.strategies.split(","):
        for k, n in enumerate(int(v) for v in args.members.split(",")):
            row = measure(strategy, n, args.tasks, args.data_dir, batched_first=k % 2 == 1, device=args.device,
                          repeats=args.repeats)
            rows.append(row)
            s, b = row["sequential"], row["batched"]
            lo, hi = row["acc_spread_seq"]
            print(f"{strategy:6s} N={n:2d}: sequential {s['seconds']:7.1f} s  batched {b['seconds']:7.1f} s  "
                  f"ratio {row['ratio']:.3f}"
                  + (f" (median of {', '.join(f'{r:.3f}' for r in row['ratios'])})" if len(row["ratios"]) > 1 else "")
                  + f" (CPU time {s['cpu_seconds']:.1f} vs {b['cpu_seconds']:.1f} s: "
                  f"{row['cpu_ratio']:.3f}; training {s['train_seconds']:.1f} vs {b['train_seconds']:.1f} s, "
                  f"evaluation {s['eval_seconds']:.1f} vs {b['eval_seconds']:.1f} s)  "
                  f"peak MiB {s['peak_mb']:.0f} vs {b['peak_mb']:.0f}  "
                  + (f"device MiB {s['device_peak_mb']:.0f} vs {b['device_peak_mb']:.0f}  "
                     if s["device_peak_mb"] is not None else "") +
                  f"acc {row['acc_mean_seq']:.4f} [{lo:.4f}, {hi:.4f}] vs {row['acc_mean_batched']:.4f}  "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
    load_after = os.getloadavg()
    print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "load_before": load_before, "load_after": load_after,
                       "threads": args.threads}, fh, indent=1)


if __name__ == "__main__":
    main()
