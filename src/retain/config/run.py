"""The resolved configuration of one run, validated once at the edge, and its stable key."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from retain.errors import ConfigError
from retain.plugins import PluginSource

OPTIMIZERS = ("sgd", "adam")
#: Caps on sizes, so a typo (--tasks 1000000000) is refused at once rather than grown into memory.
MAX_TASKS = 10_000
MAX_EPOCHS = 10_000
#: The largest learning rate accepted: far above any that trains, well below one that overflows.
MAX_LR = 1000.0
MAX_SEED = 2**32 - 1  # numpy's and Python's generators take seeds below 2**32


MAX_PARAMETERS = 2_000_000_000  # 8 GB of float32 weights before gradients and optimiser state
_BUILT: dict[tuple, int] = {}


def _count_parameters(backbone: str, kwargs: dict[str, Any], bench) -> int:
    import torch

    from retain.errors import RetainError
    from retain.models import BACKBONES

    try:
        with torch.device("meta"):
            model = BACKBONES.get(backbone)(tuple(bench.input_shape), bench.num_classes, **kwargs)
    except RetainError:
        raise
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError) as exc:
        raise ConfigError(f"backbone {backbone} cannot be built with {kwargs or 'its defaults'} for inputs "
                          f"{tuple(bench.input_shape)}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                          ) from None
    return sum(p.numel() for p in model.parameters())


def _fits(hint: Any, value: Any) -> bool:
    """Whether ``value`` is of the annotated type ``hint`` (unions, ``tuple[int, ...]``, int/float/
    bool/str; an int passes for a float; anything not annotated passes)."""
    from retain.strategies.config import check_type

    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_fits(a, value) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        return isinstance(value, (list, tuple)) and all(_fits(args[0] if args else Any, v) for v in value)
    if hint in (int, float, bool, str):
        try:
            check_type(hint, value)
        except ValueError:
            return False
        return not (isinstance(value, float) and not math.isfinite(value))
    return True


def _describe(hint: Any) -> str:
    from retain.strategies.config import type_name

    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "none"
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        return f"a list of {_describe(args[0]).removeprefix('an ').removeprefix('a ')}s" if args else "a list"
    return "a finite number" if hint is float else type_name(hint)


@functools.cache
def _hints(factory: Any) -> dict[str, Any]:
    """A factory's resolved annotations (cached: validate runs for every run key)."""
    try:
        return typing.get_type_hints(factory)
    except Exception:  # an annotation that does not resolve: nothing to check against
        return {}


def check_options(what: str, factory: Any, options: dict[str, Any]) -> None:
    """Each option's value against the type its factory's signature declares (``what`` names the
    factory in the message): a wrong type is refused before any run, not found by a failed run."""
    hints = _hints(factory)
    for key, value in options.items():
        if key in hints and not _fits(hints[key], value):
            raise ConfigError(f"{what} option {key} must be {_describe(hints[key])}, got {value!r}")


#: What a run uses for a setting that neither the user, a preset, the strategy's ``run_defaults``
#: nor the benchmark's training defaults give.
RUN_FALLBACKS: dict[str, Any] = {"benchmark": "permuted-digits", "backbone": "mlp", "hidden": (100, 100),
                                 "optimizer": "sgd"}
#: How many times :meth:`RunConfig.resolve` ran in this process (tests check: once per run).
RESOLVE_CALLS = 0


@dataclass
class RunConfig:
    """What a user asks for in one run: every field that determines its numbers. ``None`` means
    "the default", which :meth:`resolve` fills from one place, in this order: the strategy's own
    ``run_defaults`` (e.g. the optimizer of its paper), the benchmark's training defaults, then
    :data:`RUN_FALLBACKS`. A preset or an explicit value is simply a value that is set here."""

    benchmark: str | None = None
    strategy: str = "naive"
    tasks: int | None = None
    scenario: str | None = None
    backbone: str | None = None
    hidden: tuple[int, ...] | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    seed: int = 0
    order: int = 0
    data_dir: str | None = None
    task_free: bool = False
    blur: float = 0.0  # fraction of each task's samples moved into the previous task's stream
    params: dict[str, Any] = field(default_factory=dict)  # strategy hyperparameters
    benchmark_options: dict[str, Any] = field(default_factory=dict)
    backbone_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"nf": 20} for resnet18-reduced
    plasticity: dict[str, Any] = field(default_factory=dict)  # plasticity fixes, see retain.plasticity
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps (retain.training.device)
    amp: str | None = None  # mixed precision: bf16 | fp16; None is float32
    deterministic: bool = False  # deterministic CUDA kernels (slower; retain.training.device)
    ddp: int = 1  # data-parallel ranks (--ddp N or torchrun; retain.distributed); 1: one process

    def resolve(self) -> RunSpec:
        """The frozen, fully resolved run: defaults filled, every value checked, the strategy's
        hyperparameters typed, the run key computed. The one place that validates; raises
        ConfigError naming the first bad value."""
        global RESOLVE_CALLS
        RESOLVE_CALLS += 1
        from retain.benchmarks import BENCHMARKS
        from retain.benchmarks.registry import TRAINING_DEFAULTS
        from retain.models import BACKBONES
        from retain.plasticity import PlasticityConfig
        from retain.strategies import STRATEGIES

        cls = STRATEGIES.get(self.strategy)
        d = self.to_dict()
        for name, value in cls.run_defaults.items():
            if d.get(name) is None:
                d[name] = value
        if d["benchmark"] is None:
            d["benchmark"] = RUN_FALLBACKS["benchmark"]
        bench_factory = BENCHMARKS.get(d["benchmark"])
        for name, value in TRAINING_DEFAULTS[d["benchmark"]].items():  # a text stream's Adam, say
            if d[name] is None:
                d[name] = value
        for name, value in RUN_FALLBACKS.items():
            if d[name] is None:
                d[name] = value
        d["hidden"] = tuple(d["hidden"])
        backbone = BACKBONES.get(d["backbone"])
        tokenizer_from_backbone = _match_modality(d, backbone, cls)
        known = set(inspect.signature(backbone).parameters) - {"input_shape", "num_classes"}
        if set(d["backbone_options"]) - known:
            raise ConfigError(f"backbone {d['backbone']!r} has no option(s) "
                              f"{sorted(set(d['backbone_options']) - known)}; known: {sorted(known)}")
        check_options(f"backbone {d['backbone']}", backbone, d["backbone_options"])
        check_options(f"benchmark {d['benchmark']}", bench_factory, d["benchmark_options"])
        _check_numbers(d)
        from retain.training.device import check_amp, resolve_device

        d["device"] = resolve_device(d["device"])
        check_amp(d["amp"], d["device"], cls)
        if not isinstance(d["deterministic"], bool):
            raise ConfigError(f"deterministic must be true or false, got {d['deterministic']!r}")
        _check_param_names(self.strategy, cls, d["params"])
        strategy_config = cls.Config.from_params(self.strategy, d["params"])
        PlasticityConfig.from_dict(d["plasticity"])
        from retain.distributed import check_world

        check_world(d["ddp"], d["device"], cls, strategy_config, d)
        from retain.plugins import sources_of

        plugins = sources_of(cls, bench_factory, backbone)
        resolved = _keyed(d, strategy_config.to_dict(), plugins)
        if hasattr(backbone, "fingerprint"):  # weights read from disk (hf:DIR): new weights, new runs
            resolved["backbone_weights"] = backbone.fingerprint()
        if tokenizer_from_backbone:  # the backbone's own tokenizer: its files are in backbone_weights
            resolved["benchmark_options"] = {**resolved["benchmark_options"], "tokenizer": "<backbone>"}
        elif "tokenizer" in d["benchmark_options"]:  # a tokenizer of its own: its files, not its path, count
            from retain.data.text import tokenizer_digest
            from retain.hub import locate

            spec = str(d["benchmark_options"]["tokenizer"])
            resolved["tokenizer_files"] = tokenizer_digest(locate(spec, f"benchmark {d['benchmark']}: tokenizer "))
        key = hashlib.sha256(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()[:16]
        d["params"] = strategy_config.to_dict()
        return RunSpec(**d, plugins=plugins, key=key, resolved=resolved)

    # Conveniences for the Python API; each call resolves again (internal code holds a RunSpec).
    def validate(self) -> RunConfig:
        """Check every value (raise ConfigError naming the first bad one); returns self."""
        self.resolve()
        return self

    def key(self) -> str:
        return self.resolve().key

    def resolved(self) -> dict[str, Any]:
        return self.resolve().resolved

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("params", "benchmark_options", "backbone_options", "plasticity"):
            d[name] = dict(d[name])
        if d["hidden"] is not None:
            d["hidden"] = list(d["hidden"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown run setting(s): {', '.join(unknown)}")
        d = dict(d)
        if d.get("hidden") is not None:
            d["hidden"] = tuple(d["hidden"])
        return cls(**d)


def _check_param_names(strategy: str, cls: Any, params: dict[str, Any]) -> None:
    """A name that is no registered strategy's hyperparameter is refused, with the closest one: a
    misspelt ``bufer_size`` would otherwise run with the default buffer. A name another strategy
    has is a shared setting, as a shared flag is on the command line (one ``params`` dict for a
    sweep over strategies: ``buffer_size`` is ER's and means nothing to naive)."""
    from retain.strategies import STRATEGIES
    from retain.suggest import did_you_mean

    fields = [f.name for f, _ in cls.Config.fields()]
    unknown = [n for n in params if n not in fields]
    if not unknown:
        return
    anyone = {f.name for _, other in STRATEGIES.items() for f, _ in other.Config.fields()}
    for name in unknown:
        if name not in anyone:
            hint = did_you_mean(name, fields, show=repr) or did_you_mean(name, anyone, show=repr)
            raise ConfigError(f"{strategy} has no hyperparameter {name!r}{hint}, nor does any other strategy; "
                              f"{strategy} has {', '.join(fields) or 'none'}")


def _match_modality(d: dict[str, Any], backbone: Any, cls: Any) -> bool:
    """Refuse a text benchmark with an image backbone or a strategy that cannot take text, and the other way
    round (one line, before any run); give a text benchmark its backbone's tokenizer unless one is named.
    True when that filled it."""
    from retain.benchmarks.registry import MODALITIES

    wants = MODALITIES.get(d["benchmark"], "image")
    if wants not in getattr(cls, "modalities", ("image", "text")):
        why = getattr(cls, "modality_note", "") or f"it declares modalities {cls.modalities!r}"
        raise ConfigError(f"strategy {d['strategy']} does not work on {wants} benchmarks such as {d['benchmark']}: "
                          f"{why}")
    modality = getattr(backbone, "modality", None)
    has = modality() if callable(modality) else (modality or "image")
    if wants != has:
        hint = ("a text encoder, e.g. --backbone hf:models/minilm-l6-v2 (scripts/fetch-models.py)" if wants == "text"
                else "an image backbone (mlp, resnet18-reduced, vit-tiny, hf:DIR of a ViT)")
        raise ConfigError(f"benchmark {d['benchmark']} gives {wants} inputs but backbone {d['backbone']} takes {has}; "
                          f"use {hint}")
    if wants == "text" and d["benchmark_options"].get("tokenizer") is None:
        spec = getattr(backbone, "tokenizer", None)
        if spec is None:
            raise ConfigError(f"benchmark {d['benchmark']}: backbone {d['backbone']} names no tokenizer; pass "
                              "--benchmark-option tokenizer=DIR")
        d["benchmark_options"] = {**d["benchmark_options"], "tokenizer": spec}
        return True
    if wants == "text" and hasattr(backbone, "check_tokenizer"):  # a tokenizer of the user's: it must fit the model
        backbone.check_tokenizer(str(d["benchmark_options"]["tokenizer"]))
    return False


def _check_numbers(d: dict[str, Any]) -> None:
    for name, low in (("epochs", 1), ("batch_size", 1), ("seed", 0), ("order", 0)):
        value = d[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"{name.replace('_', '-')} must be an integer >= {low}, got {value!r}")
    if d["epochs"] > MAX_EPOCHS:
        raise ConfigError(f"epochs must be <= {MAX_EPOCHS}, got {d['epochs']}")
    if d["seed"] > MAX_SEED:
        raise ConfigError(f"seed must be an integer below 2**32 (the random generators' limit), got {d['seed']}")
    tasks = d["tasks"]
    if tasks is not None and (not isinstance(tasks, int) or isinstance(tasks, bool) or not 1 <= tasks <= MAX_TASKS):
        raise ConfigError(f"tasks must be a positive integer <= {MAX_TASKS}, got {tasks!r}")
    lr = d["lr"]
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not math.isfinite(lr) or lr <= 0:
        raise ConfigError(f"lr must be a finite number > 0, got {lr!r}")
    if lr > MAX_LR:  # --lr 1e300 would pass as finite and overflow the first step
        raise ConfigError(f"lr must be <= {MAX_LR:g} (a step that size overflows the weights), got {lr!r}")
    if not isinstance(d["blur"], (int, float)) or not 0.0 <= d["blur"] < 1.0:
        raise ConfigError(f"blur must be a fraction in [0, 1), got {d['blur']!r}")
    if d["optimizer"] not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be one of {list(OPTIMIZERS)}, got {d['optimizer']!r}")


def _keyed(d: dict[str, Any], params: dict[str, Any], plugins: tuple[PluginSource, ...]) -> dict[str, Any]:
    """What the run key hashes: the resolved values, with the strategy's hyperparameters filled in
    and only the keys that strategy uses. The data directory is left out (checksums pin the data);
    fields added later are left out at their default (device, amp and determinism: for a float32
    CPU run, see :func:`retain.training.device.key_fields`; ddp when 1), so the keys of older runs stay valid; the
    source hash of every plugin the run uses is in, so changing a plugin's code reruns its runs."""
    from retain.training.device import key_fields

    out = {k: v for k, v in d.items() if k not in ("data_dir", "device", "amp", "deterministic", "ddp")}
    out.update(key_fields(d["device"], d["amp"], d["deterministic"]))
    if d["ddp"] > 1:  # per-rank buffers and reduction order change the numbers; one process keeps old keys
        out["ddp"] = d["ddp"]
    out["hidden"] = list(out["hidden"])
    out["params"] = params
    for name in ("backbone_options", "blur", "plasticity"):
        if not out[name]:
            out.pop(name)
    if plugins:
        out["plugins"] = {p.module: p.sha256 for p in plugins}
    return out


@dataclass(frozen=True)
class RunSpec:
    """One run, fully resolved (see :meth:`RunConfig.resolve`): every value filled and checked,
    ``params`` holding all of the strategy's hyperparameters, the run key computed once. Nothing
    downstream validates or fills a default again."""

    benchmark: str
    strategy: str
    tasks: int | None
    scenario: str | None
    backbone: str
    hidden: tuple[int, ...]
    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    seed: int
    order: int
    data_dir: str | None
    task_free: bool
    blur: float
    params: dict[str, Any]
    benchmark_options: dict[str, Any]
    backbone_options: dict[str, Any]
    plasticity: dict[str, Any]
    device: str  # concrete: cpu, cuda:N or mps
    amp: str | None
    deterministic: bool
    ddp: int  # ranks that train it together (1: one process)
    plugins: tuple[PluginSource, ...]
    key: str
    resolved: dict[str, Any] = field(repr=False)

    @property
    def strategy_class(self):
        from retain.strategies import STRATEGIES

        return STRATEGIES.get(self.strategy)

    def strategy_config(self):
        """The strategy's typed hyperparameters (built from ``params``, which resolve checked)."""
        return self.strategy_class.Config(**self.params)

    def plasticity_config(self):
        """The plasticity fixes' typed settings (from ``plasticity``, which resolve checked)."""
        from retain.plasticity import PlasticityConfig

        return PlasticityConfig(**self.plasticity)

    def with_data_dir(self, data_dir: str | None) -> RunSpec:
        """The same run reading its data from ``data_dir`` (not part of the key)."""
        return dataclasses.replace(self, data_dir=data_dir)

    def check_fits(self, bench) -> None:
        """Refuse what only the built benchmark can judge (the strategy says what: e.g. a replay
        buffer larger than all of the training data)."""
        self.strategy_class.check_benchmark(self.strategy_config(), bench, self)
        if self.ddp > 1:  # a last batch with fewer samples than ranks
            from retain.distributed import check_batches

            check_batches(self, bench)

    def check_backbone(self, bench) -> None:
        """Build the backbone once for ``bench``'s inputs, on torch's meta device (no memory, no
        numbers), so options it cannot be built with and models too large to train are refused
        before any run; each distinct backbone is built once per process."""
        opts = {k: v for k, v in self.backbone_options.items() if k != "checkpoint"}  # read by the run itself
        kwargs = {"hidden": self.hidden, **opts} if self.backbone == "mlp" else opts
        sig = (self.backbone, repr(sorted(kwargs.items())), tuple(bench.input_shape), bench.num_classes)
        if sig not in _BUILT:
            _BUILT[sig] = _count_parameters(self.backbone, kwargs, bench)
        if _BUILT[sig] > MAX_PARAMETERS:
            raise ConfigError(f"backbone {self.backbone} with {kwargs or 'its defaults'} has {_BUILT[sig]:,} "
                              f"parameters, more than the {MAX_PARAMETERS:,} a run may train")


def as_spec(run: RunConfig | RunSpec) -> RunSpec:
    """``run`` resolved: a RunSpec as it is, a RunConfig (from the Python API) resolved now."""
    return run if isinstance(run, RunSpec) else run.resolve()
