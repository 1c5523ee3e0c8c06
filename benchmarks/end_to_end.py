"""The command a user runs, end to end, against the same protocol in plain PyTorch.

Times two whole processes, alternating, each started fresh (imports, data loading, training,
evaluation after every task and, for retain, probes, the store and the report):

    retain run --preset der-pmnist --strategy derpp --seeds 1 --data-dir D --out TMP --quiet
    python benchmarks/plain_derpp.py --data-dir D       (PyTorch's default threads)

and prints the ratio of medians (goal <= 1.15) with the machine's load average, which says how
much the numbers can be trusted on a shared machine.

    python benchmarks/end_to_end.py --data-dir ../shared/data/mnist [--repeats 2] [--tasks 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def timed(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, done.stdout + done.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--tasks", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    data = str(Path(args.data_dir).resolve())
    plain = [sys.executable, str(HERE / "plain_derpp.py"), "--data-dir", data, "--tasks", str(args.tasks)]
    times: dict[str, list[float]] = {"retain": [], "plain": []}
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    for r in range(args.repeats):
        for which in ("retain", "plain") if r % 2 == 0 else ("plain", "retain"):
            with tempfile.TemporaryDirectory() as out:
                retain = [sys.executable, "-m", "retain", "run", "--preset", "der-pmnist", "--strategy", "derpp",
                          "--seeds", "1", "--tasks", str(args.tasks), "--data-dir", data, "--out", out, "--quiet"]
                seconds, text = timed(retain if which == "retain" else plain)
                if which == "retain" and not (Path(out) / "report.html").is_file():
                    sys.exit("retain wrote no report")
            times[which].append(seconds)
            print(f"repeat {r} {which}: {seconds:.1f}s", flush=True)
    ratio = statistics.median(times["retain"]) / statistics.median(times["plain"])
    print(f"P-MNIST DER++ ({args.tasks} tasks, DER protocol), whole commands: median retain "
          f"{statistics.median(times['retain']):.1f}s, plain PyTorch {statistics.median(times['plain']):.1f}s, "
          f"ratio {ratio:.3f} (goal <= 1.15); load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
