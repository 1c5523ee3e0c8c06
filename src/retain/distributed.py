"""Data-parallel training (``--ddp N`` or ``torchrun``): which rank this process is, its shard of
a global batch, and the reductions that keep every rank's model the same.

Every rank builds the same benchmark, model and strategy from the run's seed and draws the same
global batch order; it trains on its contiguous piece of each global batch (:func:`shard`), and
the gradients are averaged over the ranks before every optimiser step (:func:`average_gradients`,
one flat all-reduce), so the weights stay identical everywhere. Replay buffers are per rank: each
keeps ``buffer_size / world`` samples of its own stream by reservoir sampling and draws its share
of a replay batch (:func:`share`). Statistics that are a mean over data (EWC's Fisher, A-GEM's
reference gradient) are reduced here too; docs/architecture.md says which and why.

Without a process group (a plain run) every function is the identity or a no-op, and costs one
``is_initialized`` check.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from retain.errors import ConfigError

#: More ranks than this on one run is almost surely a typo.
MAX_WORLD = 1024
#: The variables torchrun (and ``--ddp``) set for each rank.
RANK_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def world_size() -> int:
    """Ranks in the process group; 1 without one."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank; 0 without a process group."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def local_rank() -> int:
    """This process's rank on its machine (torchrun's ``LOCAL_RANK``): its CUDA device index."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def env_world() -> int | None:
    """The world size torchrun (or ``--ddp``) gave this process, None when it was not started as a rank."""
    if not all(k in os.environ for k in RANK_ENV):
        return None
    try:
        return int(os.environ["WORLD_SIZE"])
    except ValueError:
        raise ConfigError(f"WORLD_SIZE must be an integer, got {os.environ['WORLD_SIZE']!r}") from None


# ---- the data each rank sees ------------------------------------------------------------------
def bounds(n: int) -> tuple[int, int]:
    """[start, stop) of this rank's contiguous piece of ``n`` items: the first ``n % world`` ranks
    get one more (as ``torch.tensor_split`` splits)."""
    world, r = world_size(), rank()
    base, extra = divmod(n, world)
    start = r * base + min(r, extra)
    return start, start + base + (r < extra)


def shard(t: Tensor) -> Tensor:
    """This rank's contiguous piece of ``t`` along its first dimension (all of it with one rank)."""
    if world_size() == 1:
        return t
    start, stop = bounds(len(t))
    return t[start:stop]


def share(k: int) -> int:
    """How many of ``k`` items (a replay batch) this rank draws."""
    start, stop = bounds(k)
    return stop - start


# ---- reductions -------------------------------------------------------------------------------
def _flat_all_reduce(tensors: list[Tensor], scale: float) -> None:
    """Sum ``tensors`` over the ranks in one collective and multiply by ``scale``, in place."""
    if not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat.mul_(scale)
    offset = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[offset: offset + n].view_as(t))
        offset += n


def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """Replace every ``.grad`` by its mean over the ranks (one flat all-reduce). A parameter without
    a gradient is left alone: which parameters get one is the same on every rank (the model and
    the strategy's code are)."""
    if world_size() == 1:
        return
    _flat_all_reduce([p.grad for p in params if p.grad is not None], 1.0 / world_size())


def mean(t: Tensor) -> Tensor:
    """The mean of ``t`` over the ranks (a new tensor; ``t`` itself with one rank)."""
    if world_size() == 1:
        return t
    out = t.detach().clone()
    dist.all_reduce(out)
    return out.div_(world_size())


def sum_(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """``tensors`` summed over the ranks, in place (returned for convenience)."""
    if world_size() > 1:
        _flat_all_reduce(list(tensors.values()), 1.0)
    return tensors


def average_buffers(model: nn.Module) -> None:
    """Average the model's floating-point buffers (batch-norm running statistics) over the ranks:
    each rank updated them on its own shards, and evaluation, EWC's Fisher and LwF's teacher read
    them, so they must agree. Integer buffers (batches tracked) are the same everywhere already."""
    if world_size() > 1:
        _flat_all_reduce([b for b in model.buffers() if b.is_floating_point()], 1.0 / world_size())


def broadcast_model(model: nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank: the start is the same everywhere even for a
    backbone whose initialisation does not follow the run's seed alone."""
    if world_size() == 1:
        return
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            dist.broadcast(t.data, src=0)


# ---- checks -----------------------------------------------------------------------------------
def check_world(world: Any, device: str, strategy: Any, config: Any, run: dict[str, Any]) -> None:
    """Refuse, before any run, a world size that cannot work for this run: not an integer in
    [1, MAX_WORLD], a strategy that does not support data-parallel training, settings whose math is
    per process (plasticity fixes), a device without a collective backend, too few CUDA devices,
    a batch with fewer samples than ranks, or what the strategy itself refuses (``check_ddp``)."""
    if not isinstance(world, int) or isinstance(world, bool) or not 1 <= world <= MAX_WORLD:
        raise ConfigError(f"ddp must be an integer from 1 to {MAX_WORLD} (the number of ranks), got {world!r}")
    if world == 1:
        return
    ok, why = strategy.ddp_support()
    if not ok:
        raise ConfigError(f"ddp {world}: strategy {strategy.name} does not support data-parallel training: {why}")
    if any(run["plasticity"].values()):
        raise ConfigError(f"ddp {world}: plasticity fixes watch each rank's own batches and would change the "
                          f"ranks' weights differently; run them without --ddp")
    kind = torch.device(device).type
    if kind not in ("cpu", "cuda"):
        raise ConfigError(f"ddp {world}: data-parallel training runs on cpu (gloo) or cuda (nccl), not {kind}")
    if kind == "cuda":
        local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        if torch.cuda.device_count() < local:
            raise ConfigError(f"ddp {world}: each rank needs its own CUDA device and this machine has "
                              f"{torch.cuda.device_count()}")
    if run["batch_size"] < world:
        raise ConfigError(f"ddp {world}: batch-size {run['batch_size']} gives some ranks no sample; it must be "
                          f"at least {world}")
    strategy.check_ddp(config, world)


def stream_sizes(run: Any, bench: Any) -> list[tuple[int, int]]:
    """(task, samples) of every stream the loop will cut into global batches: each task's own
    data (after blurring), and the unions that cumulative and joint training use."""
    from retain.benchmarks.blur import stream_parts
    from retain.strategies import Strategy

    exps = bench.experiences
    if run.blur > 0:
        sizes = [sum(len(idx) for _, idx in stream_parts(exps, t, run.blur, run.seed)) for t in range(len(exps))]
    else:
        sizes = [e.num_train for e in exps]
    out = list(enumerate(sizes))
    if run.strategy_class.training_experiences is not Strategy.training_experiences:  # trains on unions
        totals = [sum(e.num_train for e in exps[: t + 1]) for t in range(len(exps))]
        out += list(enumerate(totals))
    return out


def check_batches(run: Any, bench: Any) -> None:
    """Refuse a run whose last batch of some task would leave a rank without a sample (its step
    would have no loss to take a gradient of)."""
    world, bs = run.ddp, run.batch_size
    for t, n in stream_sizes(run, bench):
        last = n % bs
        if 0 < last < world:
            raise ConfigError(f"ddp {world}: task {t + 1} trains on {n} samples, so with batch-size {bs} its last "
                              f"batch has {last}, fewer than one per rank; choose a batch size that leaves none "
                              f"or at least {world}")
