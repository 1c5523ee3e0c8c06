"""Markdown table for docs/results-regularisation.md from retain stores: final average accuracy,
forgetting (Chaudhry, max over earlier rows, can be negative) and learning accuracy, mean ± sample
std over seeds, and each row's forgetting reduction against a named baseline row.

    python benchmarks/regularisation_table.py --baseline naive naive=/tmp/reg4/pm-naive/retain.db \
        ewc=/tmp/reg4/pm-ewc/retain.db
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from retain.store import Store


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(paths: str) -> dict | None:
    """One row from one store, or several comma-separated stores (e.g. one per seed)."""
    runs = [r for p in paths.split(",") if Path(p).is_file() for r in Store(p).runs() if r["status"] == "finished"]
    runs.sort(key=lambda r: r["seed"])
    if not runs:
        return None
    cfg = runs[0]["config"]
    col = {k: [100 * r["metrics"][k] for r in runs] for k in ("avg_acc", "forgetting", "learning_acc")}
    return {"runs": runs, "cfg": cfg, **{k: mean_std(v) for k, v in col.items()},
            "seconds": statistics.mean(r["wall_seconds"] for r in runs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rows", nargs="+", help="LABEL=path/to/retain.db[,more.db], one row each")
    ap.add_argument("--baseline", required=True, help="label of the row forgetting is compared with")
    args = ap.parse_args()
    rows = {label: summarise(path) for label, path in (r.split("=", 1) for r in args.rows)}
    base = rows.get(args.baseline)
    f_base = base["forgetting"][0] if base else float("nan")
    print("| row | strategy | seeds | avg acc % | forgetting % | learning acc % | forgetting vs "
          f"{args.baseline} | s/run | settings |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, s in rows.items():
        if s is None:
            print(f"| {label} | | 0 | no finished run | | | | | |")
            continue
        cfg = s["cfg"]
        red = 100 * (f_base - s["forgetting"][0]) / f_base if f_base else float("nan")
        params = ", ".join(f"{k}={v}" for k, v in sorted(cfg["params"].items()))
        extra = f"{cfg['optimizer']} lr {cfg['lr']}" + (", task-free" if cfg.get("task_free") else "")
        cells = [f"{m:.1f} ± {sd:.1f}" for m, sd in (s["avg_acc"], s["forgetting"], s["learning_acc"])]
        print(f"| {label} | {cfg['strategy']} | {len(s['runs'])} | {' | '.join(cells)} | "
              f"{'—' if label == args.baseline else f'{red:+.0f} %'} | {s['seconds']:.0f} | {extra}; {params} |")


if __name__ == "__main__":
    main()
