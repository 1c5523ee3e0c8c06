"""`retain run`: run a grid of runs (strategies x seeds x orders on one benchmark), record each
in the store, print the results table. Runs already finished in the store are not run again."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from retain.errors import RetainError


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _strategy_flags(parser: argparse.ArgumentParser) -> list[str]:
    """One flag per hyperparameter field of every registered strategy (shared names merge)."""
    from retain.strategies import STRATEGIES

    group = parser.add_argument_group("strategy hyperparameters (each applies to the strategies that have it)")
    seen: dict[str, list[str]] = {}
    meta: dict[str, tuple[type, str]] = {}
    for name, cls in STRATEGIES.items():
        for f, typ in cls.Config.fields():
            seen.setdefault(f.name, []).append(name)
            meta.setdefault(f.name, (typ, f.metadata.get("help", "")))
    for field_name, owners in sorted(seen.items()):
        typ, help_text = meta[field_name]
        conv = {bool: _bool, int: int, float: float}.get(typ, str)
        group.add_argument("--" + field_name.replace("_", "-"), dest=f"hp_{field_name}", type=conv,
                           default=None, help=f"{help_text} [{', '.join(owners)}]")
    return sorted(seen)


def _configs(args: argparse.Namespace):
    from retain.console import console
    from retain.presets import load_preset, resolve
    from retain.runconfig import RunConfig
    from retain.strategies import STRATEGIES

    if args.seeds < 1 or args.orders < 1:
        raise RetainError(f"--seeds and --orders must be >= 1, got {args.seeds} and {args.orders}")
    params = {n: getattr(args, f"hp_{n}") for n in args.hp_names if getattr(args, f"hp_{n}") is not None}
    out = []
    preset = load_preset(args.preset) if args.preset else None
    explicit = {k: getattr(args, k) for k in ("benchmark", "tasks", "scenario", "backbone", "hidden", "epochs",
                                              "batch_size", "lr", "optimizer")}
    for strategy in args.strategy or STRATEGIES.names():
        run_kwargs, strategy_params, notes = resolve(preset, strategy, explicit, params)
        for note in notes:
            console.print(f"[yellow]note[/yellow]: {note}")
        for order in range(args.orders):
            for seed in range(args.seeds):
                cfg = RunConfig(strategy=strategy, seed=seed, order=order, data_dir=args.data_dir,
                                task_free=args.task_free, plasticity=args.plasticity_of(args),
                                blur=args.blur, params=strategy_params, **run_kwargs)
                out.append(cfg.validate())
    return out


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True))
    os.replace(tmp, path)


def cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from retain.benchmarks import make_benchmark
    from retain.console import console, make_progress, results_table
    from retain.record import execute
    from retain.store import Store

    configs = _configs(args)
    bench = make_benchmark(configs[0].benchmark, tasks=configs[0].tasks, seed=0, scenario=configs[0].scenario,
                           data_dir=configs[0].data_dir)  # bad data fails here, before anything is written
    for c in configs:
        c.check_fits(bench)  # e.g. a replay buffer larger than all the training data
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = Store(args.store or out / "retain.db")
    done = {r["run_key"]: r for r in store.runs()}
    records = [done[c.key()] for c in configs if c.key() in done]
    todo = [c for c in configs if c.key() not in done]
    if records:
        console.print(f"{len(records)} of {len(configs)} runs already finished in {store.path}; running the rest")
    with make_progress() as bar:
        bar.disable = args.quiet
        overall = bar.add_task("study", total=len(configs), completed=len(records))
        for cfg in todo:
            current = bar.add_task(f"{cfg.strategy} seed {cfg.seed}", total=1)
            progress = lambda done, total, desc, _t=current, _c=cfg: bar.update(
                _t, completed=done, total=total, description=f"{_c.strategy} s{_c.seed} {desc}")
            rec = execute(cfg, study=args.study, progress=progress, checkpoint_dir=args.checkpoint_dir)
            store.save_run(rec)
            records.append(rec)
            bar.remove_task(current)
            bar.advance(overall)
    keys = ("benchmark", "strategy", "seed", "acc_matrix", "metrics", "run_key", "task_order", "wall_seconds",
            "peak_mem_mb")
    summary = [{k: r[k] for k in keys} | {"order": r["extra"]["order"]} for r in records
               if r["status"] == "finished"]
    write_json_atomic(out / "summary.json", summary)
    if summary:  # a table of failed runs only would be empty
        Console(width=max(Console().width, 100)).print(
            results_table(records, title=f"Results on {configs[0].benchmark}"))
    failed = [r for r in records if r["status"] != "finished"]
    for r in failed:
        console.print(f"[red]run failed[/red]: {r['strategy']} seed {r['seed']}: {r['error']}")
    from retain.probes import print_event_warnings

    print_event_warnings(records, console)  # the diagnostics events of the runs just made
    console.print(f"store: {store.path}  summary: {out / 'summary.json'}")
    return 1 if failed else 0



def add_parser(sub) -> None:
    from retain.strategies import STRATEGIES

    run = sub.add_parser("run", help="run a study (no arguments: the default study on permuted-digits)")
    run.add_argument("--benchmark", help="benchmark name (see `retain list`; default permuted-digits)")
    run.add_argument("--preset", help="a published protocol as defaults (e.g. der-pmnist, der-smnist, der-rmnist): "
                                      "benchmark, training settings and each method's best values for --buffer-size; "
                                      "explicit flags override it")
    run.add_argument("--strategy", action="append", help=f"strategy, repeatable (default: all: "
                                                         f"{', '.join(STRATEGIES.names())})")
    run.add_argument("--seeds", type=int, default=3, help="run seeds 0..N-1 (default 3)")
    run.add_argument("--orders", type=int, default=1, help="task orders 0..K-1; 0 is the natural order")
    run.add_argument("--tasks", type=int, help="number of tasks (default: the benchmark's)")
    run.add_argument("--scenario", choices=("task-il", "class-il", "domain-il"), help="evaluation scenario")
    run.add_argument("--epochs", type=int, help="epochs per task (default: the benchmark's)")
    run.add_argument("--batch-size", type=int, help="batch size (default: the benchmark's)")
    run.add_argument("--lr", type=float, help="learning rate (default: the benchmark's)")
    run.add_argument("--optimizer", choices=("sgd", "adam"), help="optimizer (default sgd)")
    run.add_argument("--backbone", help="backbone name (see `retain list`; default mlp)")
    run.add_argument("--hidden", type=lambda s: tuple(int(v) for v in s.split(",")),
                     help="MLP hidden widths, comma separated (default 100,100)")
    run.add_argument("--task-free", action="store_true", help="no task boundaries reach the strategy")
    run.add_argument("--blur", type=float, default=0.0, help="blurred boundaries: fraction of each task's "
                     "samples moved into the previous task's stream (default 0)")
    from retain.plasticity.flags import add_plasticity_flags

    add_plasticity_flags(run)
    run.add_argument("--data-dir", default=os.environ.get("RETAIN_DATA"),
                     help="folder with the data files (default: $RETAIN_DATA)")
    run.add_argument("--out", default="retain-results", help="output folder (store, summary.json)")
    run.add_argument("--store", help="SQLite store (default: OUT/retain.db)")
    run.add_argument("--study", default="", help="a name to group these runs under")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--checkpoint-dir", help="save each run's state after every task here; a killed run "
                                              "started again resumes from its last finished task")
    run.set_defaults(hp_names=_strategy_flags(run), handler=cmd_run)
