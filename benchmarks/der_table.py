"""Aggregate DER-paper reproduction runs from one or more retain stores into a Markdown table.

Final average accuracy (mean ± sample std over seeds, in %) per strategy and store, plus the
per-run values and the resolved hyperparameters each run used, so the table can be checked
against the store rows.

    python benchmarks/der_table.py /tmp/retain-replay/pmnist-500/retain.db /tmp/retain-replay/pmnist-500-derpp/retain.db
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict

from retain.store import Store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stores", nargs="+")
    args = ap.parse_args()
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for path in args.stores:
        for run in Store(path).runs():
            cfg = run["config"]
            size = cfg["params"].get("buffer_size", "-")
            groups[(cfg["benchmark"], cfg["scenario"], size, run["strategy"])].append(run)
    print("| benchmark | scenario | buffer | strategy | seeds | final avg acc % (mean ± std) | per seed | lr | batch "
          "| params |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (bench, scenario, size, strategy), runs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        runs.sort(key=lambda r: r["seed"])
        accs = [100 * r["metrics"]["avg_acc"] for r in runs]
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        cfg = runs[0]["config"]
        params = ", ".join(f"{k}={v}" for k, v in sorted(cfg["params"].items()))
        print(f"| {bench} | {scenario} | {size} | {strategy} | {len(runs)} | {statistics.mean(accs):.2f} ± {std:.2f} | "
              f"{' / '.join(f'{a:.2f}' for a in accs)} | {cfg['lr']} | {cfg['batch_size']} | {params} |")


if __name__ == "__main__":
    main()
