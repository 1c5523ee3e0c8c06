"""`retain dissimilarity`: forgetting of each strategy against measured task
dissimilarity, on permuted benchmarks where each later task permutes a fraction p of the pixels
(see retain.execution.dissimilarity_study). Writes a PNG plot, a JSON table and the runs in the store."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from retain.errors import ConfigError

#: What the study compares without --strategy.
DEFAULT_STRATEGIES = ("naive", "ewc", "er")


def _floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or any(not 0.0 <= v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"fractions must be in [0, 1], got {text!r}")
    return values


def _configs(args: argparse.Namespace):
    from retain.config.run import RunConfig
    from retain.strategies import STRATEGIES

    if not args.benchmark.startswith("permuted-"):
        raise ConfigError(f"--benchmark must be a permuted benchmark (permuted-digits, permuted-mnist), "
                          f"got {args.benchmark!r}")
    if args.tasks < 2 or args.seeds < 1:
        raise ConfigError(f"--tasks must be >= 2 and --seeds >= 1, got {args.tasks} and {args.seeds}")
    strategies = args.strategy or list(DEFAULT_STRATEGIES)
    for s in strategies:
        STRATEGIES.get(s)  # an unknown name: one line, before anything else
    from retain.cli.run import _strategy_params

    params = _strategy_params(args, strategies)  # a flag goes to the strategies that have it
    if "ewc" in params:
        params["ewc"].setdefault("online", True)  # online EWC unless --online false
    return [RunConfig(benchmark=args.benchmark, strategy=s, tasks=args.tasks, epochs=args.epochs, lr=args.lr,
                      seed=seed, data_dir=_data_dir(args), params=params[s],
                      plasticity=args.plasticity_of(args), benchmark_options={"permute_fraction": p}).resolve()
            for p in args.fractions for s in strategies for seed in range(args.seeds)]


def _data_dir(args: argparse.Namespace) -> str | None:
    """--data-dir, else $RETAIN_DATA. A folder given on the command line to a benchmark that reads
    no files is refused rather than ignored (permuted-digits is built in)."""
    if args.data_dir and args.benchmark == "permuted-digits":
        raise ConfigError(f"--data-dir {args.data_dir}: permuted-digits is built in and reads no data files; "
                          "for MNIST from that folder add --benchmark permuted-mnist")
    return args.data_dir or os.environ.get("RETAIN_DATA")


def _what(args: argparse.Namespace) -> str:
    """What the study ran, for the table's and the plot's titles."""
    return f"{args.benchmark}, {args.tasks} tasks, {args.seeds} seed(s) per point"


def _table(summary, gate: float, what: str = ""):
    from rich.table import Table

    strategies = sorted({r["strategy"] for r in summary})
    t = Table(title=f"Forgetting (points) vs task dissimilarity{' on ' + what if what else ''}; gate {gate:g} "
                    "is a heuristic, no primary source",
              title_justify="left")
    for col in ("p", "dissim (proto)", "dissim (OTDD)", *strategies):
        t.add_column(col, justify="right")
    for p in sorted({r["fraction"] for r in summary}):
        rows = {r["strategy"]: r for r in summary if r["fraction"] == p}
        any_row = next(iter(rows.values()))
        t.add_row(f"{p:g}", f"{any_row['dissim_proto']:.2f}", f"{any_row['dissim_otdd']:.2f}",
                  *(f"{100 * rows[s]['forgetting']:.1f}" if s in rows else "-" for s in strategies))
    return t


def cmd_dissimilarity(args: argparse.Namespace) -> int:
    from rich.console import Console

    from retain.cli.console import console
    from retain.config.study_file import Study
    from retain.execution.dissimilarity_study import fraction_rows, measure_all, plot, summarise
    from retain.execution.progress import run_with_progress
    from retain.store import Store

    configs = _configs(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = Store(args.store or out / "retain.db")
    dissim = measure_all(configs, args.samples)
    outcome = run_with_progress(Study(name="dissimilarity", configs=configs, command="retain dissimilarity"),
                                store, quiet=args.quiet, workers=args.workers)
    for r in outcome.records:
        if r["status"] != "finished":
            console.print(f"[red]run failed[/red]: {r['strategy']} p={r['config']['benchmark_options']} "
                          f"seed {r['seed']}: {r['error']}")
    summary = summarise(fraction_rows(outcome.records, dissim))
    if not summary:
        console.print("[red]no run finished[/red]")
        return 1
    (out / "dissimilarity.json").write_text(json.dumps(summary, indent=1))
    png = plot(summary, out / "forgetting_vs_dissimilarity.png", args.gate, title=_what(args))
    Console().print(_table(summary, args.gate, _what(args)))
    console.print(f"plot: {png}  table: {out / 'dissimilarity.json'}  store: {store.path}")
    return 0 if all(r["status"] == "finished" for r in outcome.records) else 1


def add_parser(sub) -> None:
    from retain.plasticity.flags import add_plasticity_flags

    d = sub.add_parser("dissimilarity", help="a controlled study: forgetting of each strategy vs task "
                                             "dissimilarity (permuted tasks)", add_help=False)
    from retain.cli.run import add_help

    add_help(d, defaults=lambda: list(DEFAULT_STRATEGIES))
    d.add_argument("--benchmark", default="permuted-digits", help="permuted-digits or permuted-mnist")
    d.add_argument("--fractions", type=_floats, default=[0.0, 0.25, 0.5, 0.75, 1.0],
                   help="fractions p of pixels each later task permutes (default 0,0.25,0.5,0.75,1)")
    d.add_argument("--strategy", action="append", help="repeatable (default: naive, ewc (online), er)")
    d.add_argument("--tasks", type=int, default=3, help="tasks per run (default 3)")
    d.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 per (p, strategy) (default 1)")
    d.add_argument("--epochs", type=int, help="epochs per task (default: the benchmark's)")
    d.add_argument("--lr", type=float, help="learning rate (default: the benchmark's)")
    d.add_argument("--samples", type=int, default=1000, help="samples per task for the dissimilarity measures")
    d.add_argument("--gate", type=float, default=0.73,
                   help="dissimilarity gate drawn on the plot (a heuristic with no primary source)")
    d.add_argument("--data-dir", help="folder with the data files of permuted-mnist (default: $RETAIN_DATA); "
                                      "permuted-digits is built in and refuses one")
    d.add_argument("--out", default="retain-dissimilarity", help="output folder (plot, JSON, store)")
    d.add_argument("--store", help="SQLite store (default: OUT/retain.db)")
    d.add_argument("--workers", type=int, default=1, help="runs in parallel (process pool when > 1)")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    add_plasticity_flags(d)
    from retain.cli.run import _strategy_flags

    d.set_defaults(handler=cmd_dissimilarity, hp_names=_strategy_flags(d))
