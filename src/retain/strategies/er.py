"""Experience Replay (ER) with a reservoir buffer.

Each step trains one cross-entropy over the current batch concatenated with a batch drawn from
a reservoir of past samples; only the current samples are then offered to the reservoir.
Chaudhry et al., "On Tiny Episodic Memories in Continual Learning", arXiv:1902.10486 (2019);
reservoir insertion as in Riemer et al., ICLR 2019 and the DER paper's ER baseline.
No task boundaries are needed.

On augmented benchmarks the buffer stores the inputs before augmentation and augments replayed
samples each time they are drawn, as Mammoth does (it stores ``not_aug_inputs`` and applies its
transform in ``Buffer.get_data``): a replayed image is seen under a new crop and flip each time,
not frozen under the one it had when it was inserted.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from retain import distributed
from retain.memory import ClassBalancedBuffer, ReplayBatch, ReservoirBuffer, buffer_stats
from retain.strategies.base import Strategy, register_strategy
from retain.strategies.config import StrategyConfig, hp


@dataclass
class ReplayConfig(StrategyConfig):
    """Hyperparameters every replay strategy has."""

    buffer_size: int = hp(500, "replay buffer capacity in samples (reservoir sampling)", low=1)
    replay_batch_size: int = hp(128, "samples drawn from the buffer per step", low=1)
    buffer_kind: str = hp("reservoir", "reservoir: uniform over the stream (Algorithm R); class-balanced: equal "
                          "slots per seen class", choices=("reservoir", "class-balanced"))


class ReplayStrategy(Strategy):
    """A strategy that owns a reservoir buffer, reports its statistics and checkpoints it.

    Subclasses insert with :meth:`remember` and draw with :meth:`replay`, which keep the buffer
    free of augmentation and augment what they draw (see the module docstring)."""

    family = "replay"

    Config = ReplayConfig

    def __init__(self, model, config: ReplayConfig, **kwargs):
        super().__init__(model, config, **kwargs)
        kind = ClassBalancedBuffer if config.buffer_kind == "class-balanced" else ReservoirBuffer
        world = distributed.world_size()
        if world == 1:
            self.buffer = kind(config.buffer_size)
        else:  # a slice of the memory per rank, over the rank's own stream, with its own draws
            seed = int(torch.randint(2**62, ()))  # the same on every rank: the global generators agree
            self.buffer = kind(config.buffer_size // world, seed=seed + distributed.rank())

    @classmethod
    def check_ddp(cls, config: ReplayConfig, world: int) -> None:
        """Each rank keeps buffer-size / world samples and draws its share of a replay batch: the
        buffer must split evenly (equal slices of equal streams keep the union uniform), and each
        rank must draw at least one sample."""
        from retain.errors import ConfigError

        if config.buffer_size % world:
            raise ConfigError(f"ddp {world}: buffer-size {config.buffer_size} must be a multiple of {world} (each rank "
                              f"keeps an equal slice of the buffer)")
        if config.replay_batch_size < world:
            raise ConfigError(f"ddp {world}: replay-batch-size {config.replay_batch_size} must be at least {world} "
                              f"(each rank draws its share)")

    @classmethod
    def check_benchmark(cls, config: ReplayConfig, benchmark, run) -> None:
        """A buffer larger than all of the benchmark's training data could never fill: usually a
        size meant for a bigger benchmark."""
        total = sum(e.num_train for e in benchmark.experiences)
        if config.buffer_size > total:
            from retain.errors import ConfigError

            raise ConfigError(f"{run.strategy}: buffer-size {config.buffer_size} is larger than all the training "
                              f"data of {run.benchmark} ({total} samples in {len(benchmark.experiences)} tasks); "
                              f"expected at most {total}")

    def replay(self, k: int) -> ReplayBatch:
        """``k`` buffer items, their inputs augmented afresh when the benchmark augments; in a
        data-parallel run, this rank's share of ``k`` from its own buffer."""
        batch = self.buffer.sample(distributed.share(k))
        if self.augment is not None:
            batch = dataclasses.replace(batch, x=self.augment(batch.x))
        return batch

    def remember(self, x: Tensor, y: Tensor, task: int, *, plain: Tensor | None = None,
                 logits: Tensor | None = None) -> None:
        """Offer the current batch to the buffer: its non-augmented inputs ``plain`` when given."""
        self.buffer.add(x if plain is None else plain, y, task, logits=logits)

    def stats(self) -> dict[str, Any]:
        return {"buffer": buffer_stats(self.buffer)}

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"buffer": self.buffer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.buffer.load_state_dict(state["buffer"])


@register_strategy("er")
class ER(ReplayStrategy):
    """Experience replay: CE over [current batch; buffer batch], then reservoir insertion."""

    cost = "a reservoir buffer of past samples; one extra forward/backward on a buffer batch per step"
    amp_modes = ("bf16", "fp16")
    data_parallel = True  # per-rank buffers and replay shares (ReplayStrategy); gradients averaged in step

    accepts_regularisers = True  # a regulariser's term sees the current batch's rows (er+ewc)

    def observe(self, x: Tensor, y: Tensor, task: int, *, plain: Tensor | None = None) -> dict[str, Tensor]:
        inputs, labels = x, y
        if len(self.buffer):
            replay = self.replay(self.config.replay_batch_size)
            inputs, labels = torch.cat([x, replay.x]), torch.cat([y, replay.y])
        with self.autocast():
            logits = self.model(inputs)
            loss = F.cross_entropy(logits, labels)
        self.step(loss, self.extra_loss(x, y, logits[: len(y)]))
        self.remember(x, y, task, plain=plain)
        return {"loss": loss.detach()}
