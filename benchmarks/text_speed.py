"""retain's sequential-LoRA run on text against a plain transformers + PEFT loop doing the same steps on the
same batches (benchmarks/plain_text_lora.py), end to end: each side is a whole command timed from outside
(imports, reading and tokenising the data, loading the model, training, evaluating every task after each
one; retain also probes and stores, and with --report writes its report). retain starts from an empty
token cache, so it tokenises as the plain loop does. Sides alternate, R times each; the ratio is of the
medians.

    python benchmarks/text_speed.py --model models/minilm-l6-v2 --data ../shared/data/text-cl --repeats 2

Prints each run, then the ratio, tokens per second of training and peak memory of both sides.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(cmd, env=None):
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return time.perf_counter() - t, done.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/minilm-l6-v2")
    ap.add_argument("--data", default="../shared/data/text-cl")
    ap.add_argument("--tasks", default="agnews,dbpedia")
    ap.add_argument("--train", type=int, default=256)
    ap.add_argument("--test", type=int, default=128)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--report", action="store_true", help="let retain write its report too (the plain loop has none)")
    a = ap.parse_args()
    py = sys.executable
    plain = [py, "benchmarks/plain_text_lora.py", "--model", a.model, "--data", a.data, "--tasks", a.tasks,
             "--train", str(a.train), "--test", str(a.test), "--max-length", str(a.max_length), "--lr", "1e-3"]
    times = {"retain": [], "plain": []}
    seen = {}
    for r in range(a.repeats):
        for side in (("retain", "plain") if r % 2 == 0 else ("plain", "retain")):
            with tempfile.TemporaryDirectory() as tmp:
                if side == "plain":
                    wall, out = timed(plain)
                    seen["plain"] = json.loads(out.strip().splitlines()[-1])
                else:
                    env = {**os.environ, "RETAIN_CACHE": str(Path(tmp) / "cache")}  # tokenise, as the plain loop does
                    cmd = [py, "-m", "retain", "run", "--benchmark", "text-cl", "--backbone", f"hf:{a.model}",
                           "--data-dir", a.data, "--strategy", "naive", "--seeds", "1", "--workers", "1",
                           "--lr", "1e-3", "--backbone-option", "mode=lora", "--backbone-option", "head_lr_scale=10",
                           "--benchmark-option", f"stream={a.tasks}", "--benchmark-option", f"train_per_task={a.train}",
                           "--benchmark-option", f"test_per_task={a.test}",
                           "--benchmark-option", f"max_length={a.max_length}", "--out", str(Path(tmp) / "out"),
                           "--quiet", *([] if a.report else ["--no-report"])]
                    wall, _ = timed(cmd, env)
                    from retain.store import Store

                    with Store(Path(tmp) / "out" / "retain.db", readonly=True) as store:
                        rec = store.runs()[0]
                    seen["retain"] = {"acc_matrix": [rec.baseline, *rec.acc_matrix],
                                      "train_seconds": sum(rec.task_seconds), "peak_mem_mb": rec.peak_mem_mb}
            times[side].append(wall)
            print(f"{side:6} {wall:6.1f} s", flush=True)
    ret, pl = statistics.median(times["retain"]), statistics.median(times["plain"])
    tokens = seen["plain"]["train_tokens"]
    load = os.getloadavg()[0]
    print(f"\nratio retain / plain (medians of {a.repeats}): {ret / pl:.3f}  ({ret:.1f} s vs {pl:.1f} s; "
          f"load {load:.1f})")
    print(f"steps {seen['plain']['steps']}, tokens trained on {tokens:,}")
    for side in ("retain", "plain"):
        s = seen[side]
        print(f"{side:6}: {tokens / s['train_seconds']:,.0f} tokens/s in training, peak {s['peak_mem_mb']:.0f} MiB, "
              f"final row {[round(x, 3) for x in s['acc_matrix'][-1]]}")


if __name__ == "__main__":
    main()
