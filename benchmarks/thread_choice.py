"""Is the default thread choice as fast as the best explicit one on a loaded machine? Starts a
competing load (``--load K`` processes that spin on a core each), waits a moment for it to
bite, then times the same `retain run` command with ``--threads 1``, ``--threads <cores>`` and
no ``--threads`` (the default, retain.execution.threads), ``--repeats`` times each in turns,
every time into a fresh folder. Target: the default's median within 10 % of the best explicit
setting's median.

    .venv/bin/python benchmarks/thread_choice.py [--load 3] [--repeats 2] [--tasks 5] [--epochs 1]

The command is the batched-seeds one of issue 33 (DER++, 3 seeds, one ensemble, in this
process: --workers 1) on permuted digits. The times are wall clock of the whole command, as a
user sees it. Other work on the machine adds to the load given: the script prints the load
average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def spin() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def timed(args: list[str]) -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "retain", "run", *args, "--out", tmp], env=env,
                              capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"retain run failed ({proc.returncode}): {proc.stderr[-2000:]}")
        import sqlite3

        with sqlite3.connect(Path(tmp) / "retain.db") as conn:
            extra = json.loads(conn.execute("SELECT extra FROM runs LIMIT 1").fetchone()[0])
    return elapsed, f"{extra.get('threads')} thread(s): {extra.get('threads_choice')}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--load", type=int, default=3, help="spinning processes started beside the runs")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--tasks", type=int, default=5)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--seeds", type=int, default=3)
    a = p.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    base = ["--benchmark", "permuted-digits", "--strategy", "derpp", "--seeds", str(a.seeds), "--tasks", str(a.tasks),
            "--epochs", str(a.epochs), "--workers", "1", "--quiet", "--no-report", "--warnings", "none"]
    settings = {"--threads 1": ["--threads", "1"], f"--threads {cores}": ["--threads", str(cores)], "default": []}
    if cores == 1:
        settings.pop("--threads 1")
    print(f"{cores} cores; load average before the competing load: {os.getloadavg()[0]:.1f}")
    load = [spin() for _ in range(a.load)]
    try:
        time.sleep(3)  # the spinners are on the cores before the first run starts
        times: dict[str, list[float]] = {k: [] for k in settings}
        why = ""
        for _ in range(a.repeats):
            for name, extra in settings.items():
                elapsed, chosen = timed(base + extra)
                times[name].append(elapsed)
                if name == "default":
                    why = chosen
        after = os.getloadavg()[0]
    finally:
        for proc in load:
            proc.kill()
            proc.wait()
    medians = {k: statistics.median(v) for k, v in times.items()}
    best = min(v for k, v in medians.items() if k != "default")
    print(f"competing load: {a.load} spinning processes; load average at the end: {after:.1f}")
    print("| setting | times (s) | median (s) |")
    print("| --- | --- | --- |")
    for name, values in times.items():
        print(f"| {name} | {', '.join(f'{v:.1f}' for v in values)} | {medians[name]:.1f} |")
    ratio = medians["default"] / best
    print(f"default / best explicit: {ratio:.2f} (target <= 1.10: {'met' if ratio <= 1.10 else 'NOT met'})")
    print(f"the default chose {why}")


if __name__ == "__main__":
    main()
