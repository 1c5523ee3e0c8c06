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

OPTIMIZERS = ("sgd", "adam")
#: Caps on sizes, so a typo (--tasks 1000000000) is refused at once rather than grown into memory.
MAX_TASKS = 10_000
MAX_EPOCHS = 10_000
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


@dataclass
class RunConfig:
    """Everything that determines one run's numbers."""

    benchmark: str = "permuted-digits"
    strategy: str = "naive"
    tasks: int | None = None
    scenario: str | None = None
    backbone: str = "mlp"
    hidden: tuple[int, ...] = (100, 100)
    epochs: int | None = None  # None: the benchmark's recommended value
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str = "sgd"
    seed: int = 0
    order: int = 0
    data_dir: str | None = None
    task_free: bool = False
    blur: float = 0.0  # fraction of each task's samples moved into the previous task's stream
    params: dict[str, Any] = field(default_factory=dict)  # strategy hyperparameters
    benchmark_options: dict[str, Any] = field(default_factory=dict)
    backbone_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"nf": 20} for resnet18-reduced
    plasticity: dict[str, Any] = field(default_factory=dict)  # plasticity fixes, see retain.plasticity

    def validate(self) -> RunConfig:
        """Check every value; raise ConfigError naming the first bad one."""
        from retain.benchmarks import BENCHMARKS
        from retain.models import BACKBONES
        from retain.strategies import STRATEGIES

        BENCHMARKS.get(self.benchmark)
        from retain.benchmarks.registry import TRAINING_DEFAULTS

        for name, value in TRAINING_DEFAULTS[self.benchmark].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        STRATEGIES.get(self.strategy)
        known = set(inspect.signature(BACKBONES.get(self.backbone)).parameters) - {"input_shape", "num_classes"}
        if set(self.backbone_options) - known:
            raise ConfigError(f"backbone {self.backbone!r} has no option(s) "
                              f"{sorted(set(self.backbone_options) - known)}; known: {sorted(known)}")
        check_options(f"backbone {self.backbone}", BACKBONES.get(self.backbone), self.backbone_options)
        check_options(f"benchmark {self.benchmark}", BENCHMARKS.get(self.benchmark), self.benchmark_options)
        for name, low in (("epochs", 1), ("batch_size", 1), ("seed", 0), ("order", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"{name.replace('_', '-')} must be an integer >= {low}, got {value!r}")
        if self.epochs > MAX_EPOCHS:
            raise ConfigError(f"epochs must be <= {MAX_EPOCHS}, got {self.epochs}")
        if self.seed > MAX_SEED:
            raise ConfigError(f"seed must be an integer below 2**32 (the random generators' limit), got {self.seed}")
        if self.tasks is not None and (not isinstance(self.tasks, int) or isinstance(self.tasks, bool)
                                       or not 1 <= self.tasks <= MAX_TASKS):
            raise ConfigError(f"tasks must be a positive integer <= {MAX_TASKS}, got {self.tasks!r}")
        if not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) or self.lr <= 0:
            raise ConfigError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not isinstance(self.blur, (int, float)) or not 0.0 <= self.blur < 1.0:
            raise ConfigError(f"blur must be a fraction in [0, 1), got {self.blur!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        STRATEGIES.get(self.strategy).Config.from_params(self.strategy, self.params)
        from retain.plasticity import PlasticityConfig

        PlasticityConfig.from_dict(self.plasticity)
        return self

    def strategy_config(self):
        from retain.strategies import STRATEGIES

        return STRATEGIES.get(self.strategy).Config.from_params(self.strategy, self.params)

    def check_fits(self, bench) -> None:
        """Refuse what only the built benchmark can judge: a replay buffer larger than all of its
        training data (it could never fill; usually a size meant for a bigger benchmark)."""
        size = getattr(self.strategy_config(), "buffer_size", None)
        total = sum(e.num_train for e in bench.experiences)
        if isinstance(size, int) and size > total:
            raise ConfigError(f"{self.strategy}: buffer-size {size} is larger than all the training data of "
                              f"{self.benchmark} ({total} samples in {len(bench.experiences)} tasks); expected "
                              f"at most {total}")

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

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    def resolved(self) -> dict[str, Any]:
        """The config with the strategy's hyperparameters filled in with their defaults and
        only the keys that strategy uses; what the run key hashes."""
        self.validate()
        d = self.to_dict()
        d["params"] = self.strategy_config().to_dict()
        d.pop("data_dir")  # where the data lives does not change the numbers (checksums do)
        if not d["backbone_options"]:  # keeps the keys of runs recorded before the field existed
            d.pop("backbone_options")
        if not d["blur"]:  # keeps the keys of runs recorded before blur existed
            d.pop("blur")
        if not d["plasticity"]:  # keeps the keys of runs recorded before plasticity fixes existed
            d.pop("plasticity")
        return d

    def key(self) -> str:
        blob = json.dumps(self.resolved(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown run setting(s): {', '.join(unknown)}")
        d = dict(d)
        if "hidden" in d:
            d["hidden"] = tuple(d["hidden"])
        return cls(**d)
