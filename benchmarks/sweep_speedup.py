"""How much faster does a study run with 2 workers than with 1? Eight equal runs (same config,
seeds 0..7) on the local process pool and on a local Ray, each with 1 and with 2 workers, every
time into a fresh store. Target: 2 workers take <= 0.6x the time of 1 worker.

    .venv/bin/python benchmarks/sweep_speedup.py [--runs 8] [--tasks 3] [--epochs 2] [--skip-ray]

The times include starting the workers (forkserver + importing torch; ray.init), as a user
would see them. On a machine shared with other jobs the ratio says more about the neighbours
than about retain: check `uptime` before trusting it.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from retain.config.run import RunConfig, RunSpec
from retain.execution.executors import InProcess, ProcessPool, Ray, run_study
from retain.store import Store


def timed(executor, configs: list[RunSpec]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        out = run_study(configs, Store(Path(tmp) / "r.db"), executor)
        elapsed = time.perf_counter() - t0
    assert out.ran == len(configs) and all(r["status"] == "finished" for r in out.records)
    return elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--benchmark", default="permuted-digits")
    p.add_argument("--tasks", type=int, default=3)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--skip-ray", action="store_true")
    p.add_argument("--json", help="also write the timings here")
    args = p.parse_args()
    torch.set_num_threads(1)
    configs = [RunConfig(benchmark=args.benchmark, strategy="naive", tasks=args.tasks, epochs=args.epochs,
                         seed=s).resolve() for s in range(args.runs)]
    results = {"load_before": os.getloadavg()[0], "cpus": os.cpu_count(), "runs": args.runs,
               "in_process": timed(InProcess(), configs)}
    print(f"in-process: {results['in_process']:.1f} s for {args.runs} runs")
    backends = [("pool", lambda n: ProcessPool(n))] + ([] if args.skip_ray else [("ray", lambda n: Ray(num_cpus=n))])
    for name, make in backends:
        one, two = timed(make(1), configs), timed(make(2), configs)
        results[name] = {"1 worker s": one, "2 workers s": two, "ratio": two / one}
        print(f"{name}: 1 worker {one:.1f} s, 2 workers {two:.1f} s, ratio {two / one:.2f} (target <= 0.6)")
    results["load_after"] = os.getloadavg()[0]
    print(f"load average before/after: {results['load_before']:.1f} / {results['load_after']:.1f} "
          f"on {results['cpus']} CPUs")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
