"""Study files: a TOML grid of benchmarks x strategies (with hyperparameter grids) x seeds x task
orders, plus shared settings, expanded once into resolved runs (:class:`~retain.config.run.RunSpec`).
The format is documented in docs/studies.md. Every unknown key or bad value is refused with the
file, the key and its line (found in the text by :mod:`retain.config.toml_lines`)."""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retain.config.run import MAX_SEED, RunConfig, RunSpec, check_options
from retain.config.toml_lines import key_lines, line_of
from retain.errors import ConfigError, RetainError
from retain.suggest import did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

STUDY_KEYS = {"name": str, "description": str, "seeds": (int, list), "orders": (int, list), "out": str,
              "store": str, "plugins": list, "batch_seeds": bool}
#: The most runs one study may have: more is almost surely a typo, and would take days to run.
MAX_RUNS = 100_000
#: RunConfig fields a study sets per run itself, so they are not settings.
_NOT_SETTINGS = {"benchmark", "strategy", "seed", "order", "params", "benchmark_options"}


@dataclass
class Study:
    """A named list of runs and the command that reproduces them."""

    name: str
    configs: list[RunSpec]
    command: str
    source: str = "command line"
    description: str = ""
    out: str | None = None
    store: str | None = None
    text: str = field(default="", repr=False)  # the study file's text, kept with each run
    batch_seeds: bool = True  # false: no run of it trains in an ensemble (retain.ensemble)


class _Where:
    """Turns a key path into 'file:line: a.b.c' for error messages."""

    def __init__(self, file: str, text: str):
        self.file, self.lines = file, key_lines(text)

    def __call__(self, path: tuple[str, ...]) -> str:
        line = line_of(self.lines, path)
        return f"{self.file}:{line}: {'.'.join(path)}" if line else f"{self.file}: {'.'.join(path)}"

    def error(self, path: tuple[str, ...], message: str) -> ConfigError:
        return ConfigError(f"{self(path)}: {message}")


def load_study(path: str | Path, *, check_data: bool = True, data_dir: str | None = None) -> Study:
    """Read and expand the study file at ``path``; ``data_dir`` fills runs that set none."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the study file ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:  # a binary file, or text in another encoding: TOML is UTF-8
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not a UTF-8 text file (byte 0x{raw[exc.start]:02x} at offset "
                          f"{exc.start}); a study file is TOML, which is UTF-8") from None
    return parse_study(text, file=str(path), check_data=check_data, data_dir=data_dir)


#: How deeply a study file's arrays and tables may nest (a real one uses 3 or 4 levels).
MAX_DEPTH = 32


def _depth(value: object) -> int:
    """How deeply ``value``'s lists and dicts nest, counted without recursing."""
    deepest, todo = 0, [(value, 0)]
    while todo:
        item, level = todo.pop()
        deepest = max(deepest, level)
        if level <= MAX_DEPTH and isinstance(item, (list, dict)):
            todo.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def parse_study(text: str, *, file: str = "<study>", check_data: bool = True, data_dir: str | None = None) -> Study:
    """Expand the study in ``text`` (named ``file`` in messages) into validated runs."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        at = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        raise ConfigError(f"{file}:{at.group(1) + ':' if at else ''} not valid TOML: {exc}") from None
    except RecursionError:  # the parser recurses once per level of [[[...]]] or {a = {b = ...}}
        raise ConfigError(f"{file}: values nested too deeply to read (more than {MAX_DEPTH} levels of arrays "
                          "or tables); a study file needs a few") from None
    if _depth(data) > MAX_DEPTH:  # deep values that did parse would recurse in every later check
        raise ConfigError(f"{file}: values nested more than {MAX_DEPTH} levels deep (arrays or tables); a study "
                          "file needs a few")
    where = _Where(file, text)
    for key in data:
        if key not in ("study", "settings", "benchmarks", "strategies", "plugins"):
            raise where.error((key,), "unknown section; expected plugins = [...], [study], [settings], "
                                      "[benchmarks.NAME] or [strategies.NAME]")
    head = _table(data, "study", where, ())
    _load_plugins(data, head, file, where)
    for key, value in head.items():
        if key not in STUDY_KEYS:
            raise where.error(("study", key), f"unknown key{did_you_mean(key, STUDY_KEYS)}; expected one of "
                                              f"{sorted(STUDY_KEYS)}")
        if not isinstance(value, STUDY_KEYS[key]) or isinstance(value, bool) != (STUDY_KEYS[key] is bool):
            raise where.error(("study", key), f"bad value {value!r}")
    seeds = _indices(head.get("seeds", 1), ("study", "seeds"), where)
    orders = _indices(head.get("orders", 1), ("study", "orders"), where)
    configs = _expand(data, seeds, orders, where, data_dir)
    if check_data:
        _check_benchmarks(configs, where)
    name = head.get("name", Path(file).stem)
    return Study(name=name, configs=configs, command=f"retain run {file}", source=file,
                 description=head.get("description", ""), out=head.get("out"), store=head.get("store"), text=text,
                 batch_seeds=head.get("batch_seeds", True))


def _load_plugins(data: dict, head: dict, file: str, where: _Where) -> None:
    """Load the plugin files the study names (``plugins = [...]`` at the top or in [study]),
    relative to the study file's folder, before any name in it is looked up."""
    from retain.plugins import load_file

    for path, value in ((("plugins",), data.get("plugins")), (("study", "plugins"), head.get("plugins"))):
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise where.error(path, f"must be a list of plugin file paths, got {value!r}")
        for entry in value:
            target = Path(entry).expanduser()
            if not target.is_absolute():
                target = Path(file).parent / target
            try:
                load_file(target)
            except ConfigError as exc:
                raise where.error(path, str(exc)) from None


def _table(data: dict, key: str, where: _Where, path: tuple[str, ...]) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise where.error(path + (key,), f"must be a table, got {value!r}")
    return value


def _indices(value: Any, path: tuple[str, ...], where: _Where) -> list[int]:
    """``3`` -> [0, 1, 2]; a list of integers in [0, 2**32) stays as it is."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= MAX_RUNS:
            raise where.error(path, f"must be a count from 1 to {MAX_RUNS} or a list of integers, got {value}")
        return list(range(value))
    if not value or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_SEED for v in value):
        raise where.error(path, f"must be a count or a non-empty list of integers from 0 to 2**32 - 1, "
                                f"got {value!r}")
    if len(set(value)) != len(value):
        raise where.error(path, f"has repeated values: {value!r}")
    return list(value)


def _setting_types() -> dict[str, Any]:
    hints = typing.get_type_hints(RunConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(RunConfig) if f.name not in _NOT_SETTINGS}


def _base(hint: Any) -> Any:
    """``int | None`` -> int, ``tuple[int, ...]`` -> tuple."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.get_origin(hint) or hint


def _check_setting(name: str, value: Any, path: tuple[str, ...], where: _Where) -> Any:
    """Check one run setting's type against the RunConfig field's annotation."""
    base = _base(_setting_types()[name])
    if base is tuple:
        if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                                     for v in value):
            return tuple(value)
        raise where.error(path, f"must be a non-empty list of positive integers, got {value!r}")
    ok = {int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          bool: lambda v: isinstance(v, bool), str: lambda v: isinstance(v, str),
          dict: lambda v: isinstance(v, dict)}.get(base, lambda v: True)
    if not ok(value):
        raise where.error(path, f"must be {getattr(base, '__name__', base)}, got {value!r}")
    return float(value) if base is float else value


def _settings(table: dict, path: tuple[str, ...], where: _Where, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run settings of one table as name -> (list of grid values, key path)."""
    known = _setting_types()
    out: dict[str, Any] = {}
    for raw, value in table.items():
        if raw in skip:
            continue
        name = raw.replace("-", "_")
        if name not in known:
            raise where.error(path + (raw,), f"unknown setting{did_you_mean(name, known)}; expected one of "
                                             f"{sorted(known)}")
        # a list is a grid axis, except for list-valued settings (hidden), where a list of lists is
        listy = _base(known[name]) is tuple
        grid = value if isinstance(value, list) and (not listy or (value and isinstance(value[0], list))) else [value]
        if not grid:
            raise where.error(path + (raw,), "an empty list gives no runs")
        out[name] = ([_check_setting(name, v, path + (raw,), where) for v in grid], path + (raw,))
    return out


def _hyperparameters(name: str, table: dict, path: tuple[str, ...], where: _Where) -> dict[str, Any]:
    """Hyperparameters of strategy ``name`` as field -> (list of grid values, key path)."""
    from retain.strategies import STRATEGIES
    from retain.strategies.config import check_type, type_name

    fields = {f.name: typ for f, typ in STRATEGIES.get(name).Config.fields()}
    out = {}
    for raw, value in table.items():
        if raw in ("settings", "components"):
            continue
        hp = raw.replace("-", "_")
        if hp not in fields:
            raise where.error(path + (raw,), f"unknown hyperparameter of strategy {name!r}"
                                             f"{did_you_mean(hp, fields)}; expected one of "
                                             f"{sorted(fields) or 'none'} or a [settings] table")
        grid = value if isinstance(value, list) else [value]
        if not grid:
            raise where.error(path + (raw,), "an empty list gives no runs")
        if any(isinstance(v, (dict, list)) for v in grid):
            raise where.error(path + (raw,), f"must be a value or a list of values, got {value!r}")
        for v in grid:  # a wrong type is refused, not coerced: "10" is not 10, true is not 1
            try:
                check_type(fields[hp], v)
            except ValueError:
                raise where.error(path + (raw,), f"must be {type_name(fields[hp])}, got {v!r}") from None
        out[hp] = (grid, path + (raw,))
    return out


def _strategy_name(name: str, table: dict, path: tuple[str, ...], where: _Where) -> str:
    """The strategy a [strategies.NAME] table runs: NAME, or with ``components = ["ewc"]`` the
    composite NAME+ewc (:mod:`retain.strategies.compose`)."""
    from retain.strategies import STRATEGIES

    components = table.get("components", [])
    if not isinstance(components, list) or not all(isinstance(c, str) for c in components):
        raise where.error(path + ("components",), f"must be a list of regulariser names, e.g. [\"ewc\"], "
                                                  f"got {components!r}")
    name = "+".join([name, *components])
    try:
        known = name in STRATEGIES
    except ConfigError as exc:  # a composite that breaks a rule of composition
        raise where.error(path, str(exc)) from None
    if not known:
        raise where.error(path, f"unknown strategy; known: {', '.join(STRATEGIES.names())}")
    return name


def _expand(data: dict, seeds: list[int], orders: list[int], where: _Where,
            data_dir: str | None = None) -> list[RunSpec]:
    from retain.benchmarks import BENCHMARKS

    shared = _settings(_table(data, "settings", where, ()), ("settings",), where)
    benches, strategies = _table(data, "benchmarks", where, ()), _table(data, "strategies", where, ())
    if not benches or not strategies:
        missing = "[benchmarks.NAME]" if not benches else "[strategies.NAME]"
        raise ConfigError(f"{where.file}: a study needs at least one {missing} table")
    configs: dict[str, RunSpec] = {}
    total = 0  # runs so far, counted before they are built
    for bench, btable in benches.items():
        bpath = ("benchmarks", bench)
        if bench not in BENCHMARKS:
            raise where.error(bpath, f"unknown benchmark; known: {', '.join(BENCHMARKS.names())}")
        btable = _table(benches, bench, where, ("benchmarks",))
        options = _table(btable, "options", where, bpath)
        _check_options(bench, options, bpath + ("options",), where)
        bset = {**shared, **_settings(btable, bpath, where, skip=("options",))}
        for strat, stable in strategies.items():
            spath = ("strategies", strat)
            stable = _table(strategies, strat, where, ("strategies",))
            strat = _strategy_name(strat, stable, spath, where)  # with `components`: a composite (er+ewc)
            sset = _settings(_table(stable, "settings", where, spath), spath + ("settings",), where)
            axes = {**{k: v for k, v in {**bset, **sset}.items()},
                    **{f"params.{k}": v for k, v in _hyperparameters(strat, stable, spath, where).items()}}
            total += math.prod(len(values) for values, _ in axes.values()) * len(orders) * len(seeds)
            if total > MAX_RUNS:
                raise where.error(spath, f"the study has more than {MAX_RUNS} runs (at least {total}); "
                                         "split it into smaller studies")
            for combo in itertools.product(*(values for values, _ in axes.values())):
                chosen = dict(zip(axes, combo))
                params = {k[7:]: v for k, v in chosen.items() if k.startswith("params.")}
                run = {k: v for k, v in chosen.items() if not k.startswith("params.")}
                for order in orders:
                    for seed in seeds:
                        cfg = RunConfig(benchmark=bench, strategy=strat, seed=seed, order=order, params=params,
                                        benchmark_options=dict(options), **run)
                        if cfg.data_dir is None:
                            cfg.data_dir = data_dir  # not part of the run key: where the data lives
                        spec = _resolve(cfg, axes, spath, where)
                        configs.setdefault(spec.key, spec)  # a grid may repeat a resolved config
    return list(configs.values())


def _check_options(bench: str, options: dict, path: tuple[str, ...], where: _Where) -> None:
    """Each benchmark option must be a keyword of the benchmark's factory."""
    import inspect

    from retain.benchmarks import BENCHMARKS

    params = inspect.signature(BENCHMARKS.get(bench)).parameters
    known = sorted(k for k, p in params.items() if p.kind == p.KEYWORD_ONLY
                   and k not in ("tasks", "seed", "scenario", "data_dir"))
    for key in options:
        if key not in known:
            raise where.error(path + (key,), f"unknown option of benchmark {bench!r}; "
                                             f"known: {', '.join(known) or 'none'}")
        try:
            check_options(f"benchmark {bench}", BENCHMARKS.get(bench), {key: options[key]})
        except ConfigError as exc:
            raise where.error(path + (key,), str(exc)) from None


def _resolve(cfg: RunConfig, axes: dict[str, Any], fallback: tuple[str, ...], where: _Where) -> RunSpec:
    """Resolve ``cfg``; an error names the key whose value it is about."""
    try:
        return cfg.resolve()
    except ConfigError as exc:
        msg = str(exc)
        m = re.match(rf"{re.escape(cfg.strategy)}: ([\w-]+) ", msg) or re.match(r"([\w-]+) must", msg)
        name = m.group(1).replace("-", "_") if m else ""
        key = f"params.{name}" if m and m.re.pattern.startswith(re.escape(cfg.strategy)) else name
        for prefix, setting in (("backbone ", "backbone_options"), ("plasticity:", "plasticity"),
                                ("seed ", "study.seeds"), ("order ", "study.orders")):
            if msg.startswith(prefix):
                key = setting
        path = axes[key][1] if key in axes else tuple(key.split(".")) if key.startswith("study.") else fallback
        raise where.error(path, msg.removeprefix(f"{path[-1]}: ")) from None  # not "plasticity: plasticity: ..."


def _check_benchmarks(configs: list[RunSpec], where: _Where) -> None:
    """Build each distinct benchmark once, so missing data or bad options fail before any run."""
    from retain.benchmarks import make_benchmark

    built: dict = {}
    for c in configs:
        sig = (c.benchmark, c.tasks, c.scenario, c.data_dir, repr(sorted(c.benchmark_options.items())))
        if sig not in built:
            try:
                built[sig] = make_benchmark(c.benchmark, tasks=c.tasks, seed=0, scenario=c.scenario,
                                            data_dir=c.data_dir, **c.benchmark_options)
            except TypeError as exc:
                raise where.error(("benchmarks", c.benchmark, "options"), f"bad option ({exc})") from None
            except RetainError as exc:
                raise where.error(("benchmarks", c.benchmark), str(exc)) from None
        try:  # a buffer larger than the benchmark's data: refused here, before any run
            c.check_fits(built[sig])
        except RetainError as exc:
            raise where.error(("strategies", c.strategy, "buffer_size"), str(exc)) from None
        try:
            c.check_backbone(built[sig])
        except RetainError as exc:
            raise where.error(("benchmarks", c.benchmark), str(exc)) from None
