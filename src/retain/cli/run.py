"""`retain run [study.toml]`: run a study (a TOML study file, or the one-line study that the flags
describe) through an executor (in-process, process pool or Ray), record each run in the store,
print the results table and write the report. Runs already finished in the store are not run again."""

from __future__ import annotations

import argparse
import json
import os
import shlex
from pathlib import Path
from typing import Any

from retain.errors import ConfigError, RetainError


def _bool(text: str) -> bool:
    from retain.strategies.config import parse_bool

    try:
        return parse_bool(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _option(text: str) -> tuple[str, Any]:
    """KEY=VALUE with VALUE read as an int, float or true/false where it is one, else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    for conv in (int, float, _bool):
        try:
            return key.replace("-", "_"), conv(raw)
        except (ValueError, argparse.ArgumentTypeError):
            pass
    return key.replace("-", "_"), raw


def _widths(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas (100,100), got {text!r}") from None


def _strategy_flags(parser: argparse.ArgumentParser) -> list[str]:
    """One flag per hyperparameter field of every registered strategy (shared names merge)."""
    from retain.strategies import STRATEGIES

    group = parser.add_argument_group("strategy hyperparameters (each applies to the strategies that have it; "
                                      "`--strategy NAME --help` lists one strategy's)")
    parser.hp_group = group
    seen: dict[str, list[str]] = {}
    meta: dict[str, tuple[type, str]] = {}
    for name, cls in STRATEGIES.items():
        for f, typ in cls.Config.fields():
            seen.setdefault(f.name, []).append(name)
            meta.setdefault(f.name, (typ, f.metadata.get("help", "")))
    for field_name, owners in sorted(seen.items()):
        typ, help_text = meta[field_name]
        conv = {bool: _bool, int: int, float: float}.get(typ, str)
        flag = "--" + field_name.replace("_", "-")
        if flag in parser._option_string_actions:  # argparse would raise a conflict with a traceback
            from retain.plugins import origin

            owner = owners[-1]
            raise ConfigError(f"strategy {owner!r} ({origin(STRATEGIES.get(owner))}): its hyperparameter "
                              f"{field_name!r} would be the flag {flag}, which `{parser.prog}` has already; "
                              "rename the field")
        group.add_argument(flag, dest=f"hp_{field_name}", type=conv,
                           default=None, metavar=typ.__name__.upper() if typ in (int, float, bool) else "VALUE",
                           help=f"{help_text} [{', '.join(owners)}]")
    return sorted(seen)


def _named_strategies(words: list[str]) -> list[str]:
    """The strategies that ``--strategy`` (and ``--plus``) name in a subcommand's words."""
    names, plus = [], []
    for i, word in enumerate(words):
        for flag, into in (("--strategy", names), ("--plus", plus)):
            if word == flag and i + 1 < len(words):
                into.append(words[i + 1])
            elif word.startswith(flag + "="):
                into.append(word.split("=", 1)[1])
    return ["+".join([n, *plus]) for n in names]


class StrategyHelp(argparse.Action):
    """``-h/--help`` that lists the hyperparameter flags of the strategies ``--strategy`` names
    (without one: of ``defaults``, or of every strategy when ``defaults`` is None)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None,
                 defaults=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)
        self.defaults = defaults

    def __call__(self, parser, namespace, values, option_string=None):
        from retain.strategies import STRATEGIES

        named = _named_strategies(getattr(parser, "given", [])) or (self.defaults() if self.defaults else [])
        if named:
            try:
                fields = {f.name for n in named for f, _ in STRATEGIES.get(n).Config.fields()}
            except ConfigError as exc:
                parser.error(str(exc))
            for action in parser.hp_group._group_actions:
                if action.dest.removeprefix("hp_") not in fields:
                    action.help = argparse.SUPPRESS
            parser.hp_group.title = f"hyperparameters of {', '.join(named)} (other strategies: " \
                                    "`--strategy NAME --help`)"
        parser.print_help()
        parser.exit()


def add_help(parser: argparse.ArgumentParser, defaults=None) -> None:
    parser.add_argument("-h", "--help", action=StrategyHelp, defaults=defaults,
                        help="show this help and exit; with --strategy NAME, only that strategy's hyperparameters")


def _hp_option(text: str) -> tuple[str, str, Any]:
    """STRATEGY.NAME=VALUE: one strategy's own hyperparameter value (read by the field's type later)."""
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected STRATEGY.NAME=VALUE (e.g. derpp.beta=0.5), got {text!r}")
    strategy, dot, name = key.partition(".")
    if not dot or not strategy or not name:
        raise argparse.ArgumentTypeError(f"expected STRATEGY.NAME=VALUE (e.g. derpp.beta=0.5), got {text!r}")
    return strategy.replace("_", "-"), name, value


def in_default_study(cls: type) -> bool:
    """Whether a strategy class belongs in the default study. A built-in says so itself (or
    inherits it); a plugin's class is out unless a class of its own sets ``default_study = True``:
    the True it inherits from retain's ``Strategy`` was written for the built-ins, not for it."""
    builtin = cls.__module__.startswith("retain.")
    for klass in cls.__mro__:
        if "default_study" in vars(klass):
            if not builtin and klass.__module__.startswith("retain."):
                return False
            return bool(vars(klass)["default_study"])
    return False


def default_strategies() -> list[str]:
    """What `retain run` runs without --strategy: every registered strategy that says it belongs
    in the default study (not experimental, stable at its defaults on the default benchmark;
    :func:`in_default_study`)."""
    from retain.strategies import STRATEGIES

    return [n for n, cls in STRATEGIES.items() if in_default_study(cls) and not cls.experimental]


def _strategy_params(args: argparse.Namespace, strategies: list[str]) -> dict[str, dict[str, Any]]:
    """Each selected strategy's hyperparameters from the flags. A shared flag (--buffer-size) goes
    to every selected strategy that has that field; one that fits none of them is an error, and
    so is --hp for a strategy not selected or a field it does not have."""
    from retain.strategies import STRATEGIES

    fields = {s: {f.name for f, _ in STRATEGIES.get(s).Config.fields()} for s in strategies}
    out: dict[str, dict[str, Any]] = {s: {} for s in strategies}
    for name in args.hp_names:
        value = getattr(args, f"hp_{name}")
        if value is None:
            continue
        owners = [s for s in strategies if name in fields[s]]
        if not owners:
            takers = [s for s, cls in STRATEGIES.items() if name in {f.name for f, _ in cls.Config.fields()}]
            raise ConfigError(f"--{name.replace('_', '-')} applies to none of the selected strategies "
                              f"({', '.join(strategies)}); it is a hyperparameter of {', '.join(takers)}")
        for s in owners:
            out[s][name] = value
    for strategy, raw, value in getattr(args, "hp", None) or ():
        name = raw.replace("-", "_")
        if strategy not in out:
            raise ConfigError(f"--hp {strategy}.{raw}: {strategy!r} is not among the selected strategies "
                              f"({', '.join(strategies)})")
        if name not in fields[strategy]:
            from retain.suggest import did_you_mean

            raise ConfigError(f"--hp {strategy}.{raw}: {strategy} has no hyperparameter {raw!r}"
                              f"{did_you_mean(name, fields[strategy], show=repr)}; it has "
                              f"{', '.join(sorted(fields[strategy])) or 'none'}")
        cfg = STRATEGIES.get(strategy).Config.from_params(strategy, {name: value})  # the string, read by type
        out[strategy][name] = getattr(cfg, name)
    return out


def _configs(args: argparse.Namespace):
    from retain.cli.console import console
    from retain.config.presets import load_preset, preset_values
    from retain.config.run import RunConfig
    from retain.strategies import STRATEGIES

    if args.seeds < 1 or args.orders < 1:
        raise RetainError(f"--seeds and --orders must be >= 1, got {args.seeds} and {args.orders}")
    if args.plus and not args.strategy:
        raise ConfigError("--plus adds regularisers to a --strategy; give one, e.g. --strategy er --plus ewc")
    strategies = list(dict.fromkeys("+".join([s, *(args.plus or ())]) for s in args.strategy or default_strategies()))
    for strategy in strategies:
        STRATEGIES.get(strategy)  # an unknown name: one line, before anything else
    from retain.config.study_file import MAX_RUNS

    if args.seeds * args.orders * len(strategies) > MAX_RUNS:
        raise RetainError(f"--seeds x --orders x strategies is {args.seeds * args.orders * len(strategies)} runs, "
                          f"more than the {MAX_RUNS} a study may have")
    params = _strategy_params(args, strategies)
    out = []
    preset = load_preset(args.preset) if args.preset else None
    explicit = {k: getattr(args, k) for k in ("benchmark", "tasks", "scenario", "backbone", "hidden", "epochs",
                                              "batch_size", "lr", "optimizer")}
    for strategy in strategies:
        run_kwargs, strategy_params, notes = preset_values(preset, strategy, explicit, params[strategy])
        # a preset's options and task-free flag, under those given on the command line
        bench_options = {**run_kwargs.pop("benchmark_options", {}), **dict(args.benchmark_option or ())}
        backbone_options = {**run_kwargs.pop("backbone_options", {}), **dict(args.backbone_option or ())}
        task_free = bool(run_kwargs.pop("task_free", False)) or args.task_free
        for note in notes:
            console.print(f"[yellow]note[/yellow]: {note}")
        for order in range(args.orders):
            for seed in range(args.seeds):
                cfg = RunConfig(strategy=strategy, seed=seed, order=order, data_dir=args.data_dir,
                                task_free=task_free, plasticity=args.plasticity_of(args),
                                blur=args.blur, params=strategy_params, benchmark_options=bench_options,
                                backbone_options=backbone_options, device=args.device,
                                amp=args.amp, deterministic=args.deterministic,
                                ddp=1 if args.ddp is None else args.ddp, **run_kwargs)
                out.append(cfg.resolve())  # the one place a run is checked and its defaults filled
    return out


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True))
    os.replace(tmp, path)


#: Flags that say how or where to run, not what: allowed next to a study file, left out of the
#: command that reproduces a study's numbers.
_HOW_FLAGS = {"help", "study_file", "plugin", "out", "store", "quiet", "workers", "threads", "backend", "address",
              "tensorboard", "checkpoint_dir", "data_dir", "no_report", "warnings", "logger", "batch_seeds"}


def _flags_given(args: argparse.Namespace, skip: set[str]) -> list[tuple[argparse.Action, Any]]:
    return [(a, getattr(args, a.dest)) for a in args.run_parser._actions
            if a.dest not in skip and a.option_strings and getattr(args, a.dest, None) != a.default]


def _command(args: argparse.Namespace) -> str:
    """The `retain run` command line that reproduces these flags' study (canonical, not argv)."""
    words = ["retain", "run"]
    for action, value in _flags_given(args, _HOW_FLAGS):
        flag = action.option_strings[-1]
        if isinstance(action, argparse._StoreTrueAction):
            words.append(flag)
        elif isinstance(action, argparse._AppendAction) and action.dest == "hp":
            words += [w for s, n, v in value for w in (flag, f"{s}.{n}={v}")]
        elif isinstance(action, argparse._AppendAction):
            words += [w for v in value for w in (flag, "=".join(map(str, v)) if isinstance(v, tuple) else str(v))]
        else:
            words += [flag, ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    return shlex.join(words)


def _study(args: argparse.Namespace):
    """The study to run: the study file, or the one-line study that the flags describe."""
    from retain.benchmarks import make_benchmark
    from retain.config.study_file import Study, load_study

    if args.study_file:
        given = [a.option_strings[-1] for a, _ in _flags_given(args, _HOW_FLAGS | {"study"})]
        if given:
            raise ConfigError(f"{args.study_file}: a study file and study flags do not mix (got "
                              f"{', '.join(given)}); put those settings in the file")
        study = load_study(args.study_file, data_dir=args.data_dir)
        study.name = args.study or study.name
        return study
    configs = _configs(args)
    first = configs[0]
    from retain.execution.reporters import announce_after

    with announce_after(1.0, f"loading the data of {first.benchmark} (checked before any run starts)"):
        bench = make_benchmark(first.benchmark, tasks=first.tasks, seed=0, scenario=first.scenario,
                               data_dir=first.data_dir, **first.benchmark_options)  # bad data fails here, early
    note = truncation_note(bench)
    if note:
        from retain.cli.console import console

        console.print(f"[yellow]note[/yellow]: {note}")
    for c in configs:
        c.check_fits(bench)  # e.g. a replay buffer larger than all the training data
        c.check_backbone(bench)  # options it cannot be built with, or too large a model
    return Study(name=args.study, configs=configs, command=_command(args))


def truncation_note(bench) -> str | None:
    """What a text benchmark cut to its max_length, in one line (None when nothing was cut): never silent."""
    cut = bench.info.get("truncated")
    if not cut:
        return None
    totals = {s: [sum(v[s][0] for v in cut.values()), sum(v[s][1] for v in cut.values())] for s in ("train", "test")}
    if not totals["train"][0] and not totals["test"][0]:
        return None
    worst = sorted(((v["train"][0] / max(v["train"][1], 1), t) for t, v in cut.items()), reverse=True)[:3]
    per = ", ".join(f"{t} {100 * f:.0f}%" for f, t in worst if f > 0)
    return (f"{bench.name}: {totals['train'][0]:,} of {totals['train'][1]:,} training and {totals['test'][0]:,} of "
            f"{totals['test'][1]:,} test texts cut to {bench.info['max_length']} tokens ({per or 'test only'}); "
            "--benchmark-option max_length=N keeps more")


def _workers(text: str) -> int | None:
    if text == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer >= 1, got {value}")
    return value


def _check_how(args: argparse.Namespace) -> None:
    """Refuse bad execution settings before anything is written."""
    if args.address and args.backend != "ray":
        raise ConfigError("--address is for --backend ray")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    if args.address:  # a cluster that does not answer: one line in seconds, not Ray's retries for minutes
        from retain.execution.executors import check_ray_address

        check_ray_address(args.address)


def logger_note(loggers, reused: int, ran: int, store_path) -> str | None:
    """One line when ``--logger`` could not log some runs: runs reused from the store are not
    trained again, so no logger sees them (None when there is nothing to say)."""
    if not loggers or not reused:
        return None
    names = ", ".join(f"--logger {text}" for text in loggers)
    what = "every run was" if not ran else f"{reused} of {reused + ran} runs were"
    return (f"{what} reused from {store_path}, so {names} logged {'nothing' if not ran else 'only the others'}; "
            "loggers see runs as they train: a new --out (or --store) trains and logs them again "
            "(`retain report --tensorboard DIR` exports the stored results)")


def cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from retain.cli.console import console, results_table
    from retain.execution.progress import run_with_progress
    from retain.store import Store

    _check_how(args)
    from retain.execution.ddp import ddp_from_env, run_rank

    ddp_from_env(args)  # under torchrun, --ddp is its world size
    study = _study(args)
    code = run_rank(args, study.configs)  # --ddp: start the ranks here; a rank other than 0 trains and ends
    if code is not None:
        return code
    if any(c.deterministic and c.device.startswith("cuda") for c in study.configs):
        from retain.training.device import CUBLAS_WORKSPACE

        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)  # before a worker starts cuBLAS
    if args.checkpoint_dir:  # a bad checkpoint of any run: one line, before anything is written
        from retain.training.checkpoint import load, path_for

        for c in study.configs:
            load(path_for(args.checkpoint_dir, c.key), run_key=c.key)
    out = Path(args.out or study.out or "retain-results")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a folder")
    from retain.loggers import parse_logger

    loggers = tuple(parse_logger(text, out) for text in args.logger or ())  # unknown or not installed: refused now
    store = Store(args.store or study.store or out / "retain.db")  # refuses a foreign store first; makes its folder
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot create the folder ({exc.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):  # summary.json and the report go there after the runs
        raise ConfigError(f"--out {out}: the folder is not writable")
    outcome = run_with_progress(study, store, backend=args.backend, workers=args.workers, address=args.address,
                                quiet=args.quiet, checkpoint_dir=args.checkpoint_dir, threads=args.threads,
                                extra={"command": study.command}, loggers=loggers,
                                batch_seeds=args.batch_seeds and study.batch_seeds)
    records = outcome.records
    keys = ("benchmark", "strategy", "seed", "acc_matrix", "metrics", "run_key", "task_order", "wall_seconds",
            "peak_mem_mb")
    summary = [{k: getattr(r, k) for k in keys} | {"order": r.order} for r in records if r.finished]
    write_json_atomic(out / "summary.json", summary)
    if summary:  # a table of failed runs only would be empty
        Console().print(
            results_table(records, title=f"Results on {study.configs[0].benchmark}"))
    failed = [r for r in records if r.status != "finished"]
    from retain.cli.warnings import print_warnings

    for r in records:  # a run reused from the store comes back without its stored events: read them
        if r.id is not None and not r.events:
            r.events = store.events(r.id)
    print_warnings(records, console, args.warnings)  # failed runs and diagnostics, each fact once
    console.print(f"store: {store.path}  summary: {out / 'summary.json'}")
    note = logger_note(args.logger or (), outcome.reused, outcome.ran, store.path)
    if note:
        console.print(f"[yellow]note[/yellow]: {note}")
    if summary and not args.no_report:
        from retain.report import write_report

        try:
            beside = store.path.resolve().parent == out.resolve()  # the report covers the store it sits beside
            paths = write_report(store, out, run_keys=None if beside else [c.key for c in study.configs],
                                 title="" if beside else study.name, tensorboard=args.tensorboard)
            console.print(f"report: {paths['markdown']}  {paths['html']}")
        except ConfigError as exc:  # e.g. no matplotlib: the runs are saved, only the report is missing
            console.print(f"[yellow]report skipped[/yellow]: {exc}")
    return 1 if failed else 0


def add_parser(sub) -> None:
    run = sub.add_parser("run", help="run a study (no arguments: the default study on permuted-digits)",
                         add_help=False)
    add_help(run)
    run.add_argument("--benchmark", help="benchmark name (see `retain list`; default permuted-digits)")
    run.add_argument("--preset", help="a published protocol as defaults (e.g. der-pmnist, der-smnist, der-rmnist, "
                                      "der-scifar10): "
                                      "benchmark, training settings and each method's best values for --buffer-size; "
                                      "explicit flags override it")
    run.add_argument("--plugin", action="append", metavar="FILE.py",
                     help="a Python file that registers strategies, benchmarks, backbones, metrics or loggers, "
                          "repeatable; loaded before anything else (its source is part of its runs' keys)")
    run.add_argument("--strategy", action="append", help=f"strategy, repeatable (default: "
                                                         f"{', '.join(default_strategies())}; all of "
                                                         f"them: `retain list`)")
    run.add_argument("--plus", action="append", metavar="REGULARISER",
                     help="add a regulariser to every --strategy, repeatable: --strategy er --plus ewc runs the "
                          "composite er+ewc (which --strategy also takes directly)")
    run.add_argument("--seeds", type=int, default=3, help="run seeds 0..N-1 (default 3)")
    run.add_argument("--orders", type=int, default=1, help="task orders 0..K-1; 0 is the natural order")
    run.add_argument("--tasks", type=int, help="number of tasks (default: the benchmark's)")
    run.add_argument("--scenario", choices=("task-il", "class-il", "domain-il"), help="evaluation scenario")
    run.add_argument("--epochs", type=int, help="epochs per task (default: the benchmark's)")
    run.add_argument("--batch-size", type=int, help="batch size (default: the benchmark's)")
    run.add_argument("--lr", type=float, help="learning rate (default: the benchmark's)")
    run.add_argument("--optimizer", choices=("sgd", "adam"), help="optimizer (default sgd)")
    run.add_argument("--backbone", help="backbone name (see `retain list`; default: the benchmark's protocol's, "
                                        "resnet18-reduced on CIFAR, else mlp)")
    run.add_argument("--hidden", type=_widths,
                     help="MLP hidden widths, comma separated (default 100,100)")
    run.add_argument("--benchmark-option", action="append", type=_option, metavar="KEY=VALUE",
                     help="a benchmark option, repeatable (e.g. permute_fraction=0.5; verify=false)")
    run.add_argument("--backbone-option", action="append", type=_option, metavar="KEY=VALUE",
                     help="a backbone option, repeatable (e.g. nf=20 for resnet18-reduced)")
    run.add_argument("--device", default="auto", metavar="auto|cpu|cuda|cuda:N|mps",
                     help="where runs compute (default auto: the first CUDA device when there is one, else the "
                          "CPU); a device that is not here is refused. Runs on an accelerator take turns on it "
                          "(--workers auto is 1); docs/architecture.md")
    run.add_argument("--amp", choices=("bf16", "fp16"), help="mixed precision: forward passes and losses in "
                     "bfloat16 or float16 (fp16 with a gradient scaler); regulariser statistics stay float32. "
                     "Default float32")
    run.add_argument("--deterministic", action="store_true",
                     help="deterministic CUDA kernels (torch.use_deterministic_algorithms, "
                          "CUBLAS_WORKSPACE_CONFIG=:4096:8): reproducible GPU numbers, slower (often 10-30%%); "
                          "CPU runs are deterministic already")
    run.add_argument("--ddp", type=int, metavar="N",
                     help="data-parallel training on N processes of this machine (gloo on the CPU, nccl on CUDA, "
                          "one GPU each): each rank trains on its share of every batch and keeps its share of the "
                          "replay buffer; rank 0 alone writes. Under torchrun, its world size. Default 1; "
                          "docs/architecture.md")
    run.add_argument("--task-free", action="store_true", help="no task boundaries reach the strategy")
    from retain.plasticity.flags import add_plasticity_flags

    add_plasticity_flags(run)
    run.add_argument("--blur", type=float, default=0.0, help="blurred boundaries: fraction of each task's "
                     "samples moved into the previous task's stream (default 0)")
    run.add_argument("--data-dir", default=os.environ.get("RETAIN_DATA"),
                     help="folder with the data files (default: $RETAIN_DATA)")
    run.add_argument("--out", help="output folder: store, summary.json, report.md/.html, plots/ "
                                   "(default: the study file's `out`, else retain-results)")
    run.add_argument("--store", help="SQLite store (default: OUT/retain.db)")
    run.add_argument("--study", default="", help="a name to group these runs under")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--checkpoint-dir", help="save each run's state after every task here; a killed run "
                                              "started again resumes from its last finished task")
    run.add_argument("--workers", type=_workers, default=None, metavar="N|auto",
                     help="runs in parallel (default auto: one process per CPU core, never more than runs "
                          "to do); 1 runs in this process, N > 1 a local process pool (with --backend ray: "
                          "the CPUs of a local Ray)")
    run.add_argument("--threads", type=int, default=None, help="torch threads per run (default: the cores "
                     "the concurrent runs and other work leave free, and each run records why; numbers are "
                     "bit-identical for the same count)")
    run.add_argument("--warnings", choices=("summary", "all", "none"), default="summary",
                     help="diagnostics printed after the table: summary (about a dozen lines, most severe "
                          "first), all, or none; every event stays in the store and the report")
    run.add_argument("--hp", action="append", type=_hp_option, metavar="STRATEGY.NAME=VALUE",
                     help="one strategy's own hyperparameter, repeatable (e.g. --hp derpp.beta=0.5); the "
                          "plain flags below set a value for every selected strategy that has it")
    run.add_argument("--no-batch-seeds", dest="batch_seeds", action="store_false",
                     help="train every run on its own; by default runs that differ only in seed and order train "
                          "together as one vectorised ensemble where the strategy and backbone allow it "
                          "(docs/architecture.md, the ensemble path)")
    run.add_argument("--backend", choices=("local", "ray"), default="local", help="where runs execute")
    run.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    run.add_argument("--tensorboard", metavar="DIR", help="also export the runs as TensorBoard event files")
    run.add_argument("--logger", action="append", metavar="NAME[:ARG]",
                     help="send per-step losses and per-task metrics to a tracker while runs run, repeatable: "
                          "tensorboard[:DIR] (default OUT/tensorboard), mlflow[:URI] (default a file store at "
                          "OUT/mlruns), wandb[:PROJECT] (offline unless WANDB_MODE says otherwise); "
                          "docs/loggers.md")
    run.add_argument("--no-report", action="store_true", help="skip report.md / report.html / plots")
    run.add_argument("study_file", nargs="?", help="a TOML study file (docs/studies.md); without it the "
                                                    "flags describe the study")
    run.set_defaults(run_parser=run)
    run.set_defaults(hp_names=_strategy_flags(run), handler=cmd_run)
