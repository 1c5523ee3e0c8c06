"""The controlled dissimilarity study behind `retain dissimilarity`: permuted benchmarks
where every later task permutes a fraction p of the pixels, p swept from 0 (identical tasks) to
1 (a full permutation). For each p it measures how dissimilar the tasks are (in a fixed random
embedding, see retain.diagnostics.dissimilarity) and how much each strategy forgets, so a user
sees at which dissimilarity their strategy falters instead of trusting a single gate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from retain.diagnostics import dissimilarity as dis
from retain.metrics.registry import metrics_of


def benchmark_dissimilarity(bench, samples: int = 1000, seed: int = 0) -> dict[str, float]:
    """Mean over consecutive task pairs of both measures, on the first ``samples`` training
    samples of each task, embedded with a fixed random ReLU projection (64 wide)."""
    exps = bench.experiences
    if len(exps) < 2:
        raise ValueError("dissimilarity needs at least 2 tasks")
    xs = [e.prepare(e.train_x[:samples]) for e in exps]
    embed = dis.RandomReLUEmbedding(xs[0][0].numel(), width=64, seed=seed)
    fs, ys = [embed(x) for x in xs], [e.train_y[:samples] for e in exps]
    proto = [dis.prototype_dissimilarity(fs[i - 1], ys[i - 1], fs[i], ys[i]) for i in range(1, len(exps))]
    otdd = [dis.otdd_gaussian(fs[i - 1], ys[i - 1], fs[i], ys[i]) for i in range(1, len(exps))]
    return {"dissim_proto": float(np.mean(proto)), "dissim_otdd": float(np.mean(otdd))}


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (fraction, strategy): mean forgetting / average accuracy over seeds."""
    groups: dict[tuple[float, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["fraction"], r["strategy"]), []).append(r)
    out = []
    for (p, s), rs in sorted(groups.items()):
        out.append({"fraction": p, "strategy": s, "runs": len(rs),
                    "dissim_proto": float(np.mean([r["dissim_proto"] for r in rs])),
                    "dissim_otdd": float(np.mean([r["dissim_otdd"] for r in rs])),
                    "forgetting": float(np.mean([r["forgetting"] for r in rs])),
                    "avg_acc": float(np.mean([r["avg_acc"] for r in rs]))})
    return out


def plot(summary: list[dict[str, Any]], path: Path, gate: float, title: str = "") -> Path:
    """Forgetting against measured dissimilarity (both measures), one line per strategy; ``title``
    names what ran (the benchmark)."""
    import matplotlib

    matplotlib.use("Agg", force=True)  # headless: never open a window
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key, measure in ((axes[0], "dissim_proto", "1 - cos of class prototypes"),
                             (axes[1], "dissim_otdd", "Gaussian OTDD, scaled to [0, 1]")):
        for s in sorted({r["strategy"] for r in summary}):
            pts = sorted((r[key], 100 * r["forgetting"]) for r in summary if r["strategy"] == s)
            ax.plot([a for a, _ in pts], [b for _, b in pts], marker="o", label=s)
        ax.axvline(gate, ls="--", c="grey", lw=1)
        ax.text(gate, ax.get_ylim()[1], f" {gate:g}: heuristic gate\n (no primary source)", va="top", fontsize=8)
        ax.set_xlabel(f"task dissimilarity ({measure})")
        ax.set_xlim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("forgetting (points)")
    axes[0].legend()
    if title:
        fig.suptitle(f"Forgetting vs task dissimilarity: {title}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def fraction_rows(records: list[dict[str, Any]], dissim: dict[tuple[float, int], dict[str, float]]):
    """One row per finished run record: its fraction, seed, strategy, metrics and dissimilarity."""
    rows = []
    for r in records:
        if r["status"] != "finished":
            continue
        p = float(r["config"]["benchmark_options"].get("permute_fraction", 1.0))
        m = metrics_of(r)  # from the accuracy matrix, like every report
        rows.append({"fraction": p, "seed": r["seed"], "strategy": r["strategy"], **dissim[(p, r["seed"])],
                     "forgetting": m.get("forgetting", float("nan")), "avg_acc": m["avg_acc"]})
    return rows


def measure_all(configs, samples: int) -> dict[tuple[float, int], dict[str, float]]:
    """Dissimilarity of each (fraction, seed) benchmark (the same for every strategy)."""
    from threadpoolctl import threadpool_limits

    from retain.benchmarks import make_benchmark

    out: dict[tuple[float, int], dict[str, float]] = {}
    for c in configs:
        key = (float(c.benchmark_options["permute_fraction"]), c.seed)
        if key not in out:
            bench = make_benchmark(c.benchmark, tasks=c.tasks, seed=c.seed, scenario=c.scenario,
                                   data_dir=c.data_dir, **c.benchmark_options)
            with threadpool_limits(1), torch.no_grad():
                out[key] = benchmark_dissimilarity(bench, samples)
    return out
