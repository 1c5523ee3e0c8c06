"""The resolved configuration of one run, validated once at the edge, and its stable key."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
from dataclasses import dataclass, field
from typing import Any

from retain.errors import ConfigError

OPTIMIZERS = ("sgd", "adam")


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
        for name, low in (("epochs", 1), ("batch_size", 1), ("seed", 0), ("order", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"{name.replace('_', '-')} must be an integer >= {low}, got {value!r}")
        if self.tasks is not None and (not isinstance(self.tasks, int) or self.tasks < 1):
            raise ConfigError(f"tasks must be a positive integer, got {self.tasks!r}")
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
