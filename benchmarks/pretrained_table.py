"""The pretrained-protocol table (docs/results.md) from a store: mean ± 95% t-interval per method, and
Online-LoRA's forgetting reduction against naive, paired by seed.

    python benchmarks/pretrained_table.py measure/results/retain.db
"""
import math
import statistics as st
import sys

from retain.metrics.matrix import summarize
from retain.store import Store

T975 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776}


def ci(v):
    n = len(v)
    return (st.mean(v), T975.get(n, 2.0) * st.stdev(v) / math.sqrt(n)) if n > 1 else (v[0], float("nan"))


store = Store(sys.argv[1] if len(sys.argv) > 1 else "measure/results/retain.db", readonly=True)
groups = {}
for r in store.runs():
    c = r.config
    label = r.strategy
    if r.strategy == "ranpac" and c["params"].get("classifier") == "ncm":
        label = "ranpac ncm (SimpleCIL)"
    m = summarize(r.acc_matrix, r.baseline)
    groups.setdefault(label, []).append((r.seed, m, r.wall_seconds, r.trainable_params, r.acc_matrix))
print("| method | seeds | avg acc % | forgetting % | learning acc % | trainable params | wall s/run |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for label, runs in groups.items():
    cells = []
    for key in ("avg_acc", "forgetting", "learning_acc"):
        m, h = ci([100 * x[1][key] for x in runs])
        cells.append(f"{m:.1f} ± {h:.1f}")
    print(f"| {label} | {len(runs)} | {' | '.join(cells)} | {runs[0][3]:,} | {st.mean(x[2] for x in runs):.0f} |")
if "naive" in groups and "online-lora" in groups:
    naive = {s: m["forgetting"] for s, m, *_ in groups["naive"]}
    lora = {s: m["forgetting"] for s, m, *_ in groups["online-lora"]}
    seeds = sorted(set(naive) & set(lora))
    red = [1 - lora[s] / naive[s] for s in seeds]
    diff = [100 * (naive[s] - lora[s]) for s in seeds]
    m, h = ci(red)
    d, dh = ci(diff)
    print(f"\nOnline-LoRA vs naive, paired by seed {seeds}: forgetting reduction {100 * m:.0f} % ± {100 * h:.0f} "
          f"(per seed {[round(100 * x) for x in red]}); difference {d:.1f} ± {dh:.1f} points")
