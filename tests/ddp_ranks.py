"""One rank of tests/test_ddp.py's process group (started with RANK, WORLD_SIZE, MASTER_ADDR and
MASTER_PORT set; gloo). Writes what the test compares to OUT/rank{R}.pt (plain tensors only):

- ``union``: how often each id of a fixed stream ended in this rank's replay buffer over seeded
  trials, with the buffer made by ER itself (its per-rank slice and seed) and the stream sharded
  by the loop's own :func:`retain.distributed.shard`; ``biased``: the same with unequal slices.
- per strategy: the final weights, the accuracy matrix and the buffer, after a short real run.
- ``fisher``: EWC's Fisher of a fixed model on fixed samples, each rank taking its piece.
- ``bn``: a batch-norm layer's running mean after :func:`retain.distributed.average_buffers`.

Usage: python ddp_ranks.py OUT
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from retain import distributed
from retain.config.run import RunConfig
from retain.strategies.er import ER, ReplayConfig
from retain.strategies.penalties import fisher_diagonal
from retain.training.loop import run_experiment

STREAM, CAPACITY, BATCH, TRIALS = 400, 40, 32, 300
STRATEGIES = ("er", "derpp", "agem+ewc", "derpp+si+lwf", "cumulative")
#: Runs with settings of their own: name -> (strategy, RunConfig fields).
SETTINGS = {"er-task-free-blur": ("er", {"task_free": True, "blur": 0.2})}


def union_counts(capacity: int) -> torch.Tensor:
    """Inclusion counts of stream ids in this rank's ER buffer (a ``capacity`` buffer split over the
    ranks), the ids arriving in order in global batches of BATCH."""
    counts = torch.zeros(STREAM, dtype=torch.int64)
    ids = torch.arange(STREAM)
    for trial in range(TRIALS):
        torch.manual_seed(trial)  # as build() seeds a run: the same on every rank
        er = ER(nn.Linear(1, 10), ReplayConfig(buffer_size=capacity, replay_batch_size=2),
                make_optimizer=lambda p: torch.optim.SGD(p, lr=0.1), num_classes=10)
        for start in range(0, STREAM, BATCH):
            mine = distributed.shard(ids[start: start + BATCH])
            er.remember(mine.unsqueeze(1), mine % 10, 0)
        counts[er.buffer.x[: len(er.buffer), 0]] += 1
    return counts


def biased_counts() -> torch.Tensor:
    """Unequal slices (rank 0 keeps 30, rank 1 keeps 10 of equal streams): the union is not uniform."""
    counts = torch.zeros(STREAM, dtype=torch.int64)
    ids = torch.arange(STREAM)
    from retain.memory import ReservoirBuffer

    for trial in range(TRIALS):
        buf = ReservoirBuffer(30 if distributed.rank() == 0 else 10, seed=2 * trial + distributed.rank())
        for start in range(0, STREAM, BATCH):
            mine = distributed.shard(ids[start: start + BATCH])
            buf.add(mine.unsqueeze(1), mine % 10)
        counts[buf.x[:, 0]] += 1
    return counts


def trained(strategy: str, **settings) -> dict:
    seen: dict = {}

    def keep(ctx) -> None:
        seen["params"] = torch.cat([p.detach().reshape(-1) for p in ctx.strategy.model.parameters()])
        buf = getattr(ctx.strategy, "buffer", None)
        if buf is not None:
            seen["buffer_x"], seen["buffer_seen"] = buf.x[: len(buf)].clone(), torch.tensor(buf.seen)

    params = {"cumulative": {}, "agem+ewc": {"buffer_size": 100, "fisher_samples": 64}}.get(strategy,
                                                                                            {"buffer_size": 100})
    cfg = RunConfig(strategy=strategy, benchmark="permuted-digits", tasks=3, epochs=1, seed=0, device="cpu",
                    ddp=dist.get_world_size(), params=params, **settings)
    result = run_experiment(cfg, after_task=[keep])
    return {**seen, "acc": torch.tensor(result.acc_matrix), "losses": torch.tensor(result.losses)}


def fisher() -> dict:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    x, y = torch.randn(37, 8), torch.randint(0, 4, (37,))
    return fisher_diagonal(model, x, y, kind="exact", chunk=16)


def batch_norm() -> torch.Tensor:
    bn = nn.BatchNorm1d(3)
    bn(torch.full((4, 3), float(distributed.rank() + 1)))  # each rank sees other data
    distributed.average_buffers(bn)
    return bn.running_mean.clone()


def main(out: Path) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    result = {"union": union_counts(CAPACITY), "biased": biased_counts(), "fisher": fisher(), "bn": batch_norm()}
    for strategy in STRATEGIES:
        result[strategy] = trained(strategy)
    for name, (strategy, settings) in SETTINGS.items():
        result[name] = trained(strategy, **settings)
    torch.save(result, out / f"rank{dist.get_rank()}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
