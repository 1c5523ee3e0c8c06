"""The text table (docs/results.md) from the store benchmarks/text_table.sh writes: per method, mean ± 95%
t-interval over the task orders of average accuracy, BWT, forgetting and learning accuracy, the trainable
parameters and the wall time of a run.

    python benchmarks/text_table.py measure/text/retain.db
"""
import math
import statistics as st
import sys

from retain.metrics.matrix import summarize
from retain.store import Store

T975 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776}
ORDER = ["naive", "naive (LoRA)", "er", "derpp", "ewc", "lwf", "SimpleCIL", "ranpac", "joint"]


def ci(values):
    n = len(values)
    if n < 2:
        return f"{values[0]:.1f} (n=1)"
    return f"{st.mean(values):.1f} ± {T975.get(n, 2.0) * st.stdev(values) / math.sqrt(n):.1f}"


def label(run):
    c = run.config
    if run.strategy == "ranpac":
        return "SimpleCIL" if c["params"].get("classifier") == "ncm" else "ranpac"
    if (c.get("backbone_options") or {}).get("mode") == "lora":
        return f"{run.strategy} (LoRA)"
    return run.strategy


def main(path):
    with Store(path, readonly=True) as store:
        runs = store.runs()
    groups = {}
    for r in runs:
        groups.setdefault(label(r), []).append(r)
    print("| method | orders | avg acc % | BWT % | forgetting % | learning acc % | trainable params | wall s/run |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in sorted(groups, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER)):
        rs = groups[name]
        ms = [summarize(r.acc_matrix, r.baseline) for r in rs]
        if name == "joint":  # trained once at the end: only the final average accuracy means anything
            cells = [ci([100 * st.mean(r.acc_matrix[-1]) for r in rs]), "—", "—", "—"]
        else:
            cells = [ci([100 * m[k] for m in ms]) for k in ("avg_acc", "bwt", "forgetting", "learning_acc")]
        streams = sorted({r.config["benchmark_options"].get("stream") for r in rs})
        print(f"| {name} | {len(rs)} ({', '.join(s.split('-')[-1] for s in streams)}) | {' | '.join(cells)} | "
              f"{rs[0].trainable_params:,} | {st.mean(r.wall_seconds for r in rs):.0f} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "measure/text/retain.db")
