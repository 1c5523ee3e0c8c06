"""Blurred task boundaries for any benchmark.

With ``blur = b``, a fixed random fraction ``b`` of every task's training samples (after the
first task) is moved into the previous task's stream, shuffled in with it. The next task's data
thus starts to arrive before its nominal boundary, as in the "blurry" task-free settings of
Aljundi et al. (CVPR 2019, "Task-Free Continual Learning") and Bang et al. (CVPR 2021, Rainbow
Memory). Every sample is still seen exactly once per epoch; only where in the stream changes.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from retain import distributed
from retain.benchmarks.base import Experience, TrainBatch, gather_train


def moved_indices(exp: Experience, blur: float, seed: int) -> Tensor:
    """The training indices of ``exp`` that are moved into the previous task's stream (fixed
    for a run: seeded by the run seed and the task, not by the training generator)."""
    n_moved = int(round(blur * exp.num_train))
    g = torch.Generator().manual_seed(seed * 1000 + exp.task_id)
    return torch.randperm(exp.num_train, generator=g)[:n_moved]


def stream_parts(exps: list[Experience], t: int, blur: float, seed: int) -> list[tuple[Experience, Tensor]]:
    """(experience, training indices) that make up the stream of task ``t``."""
    own = torch.arange(exps[t].num_train)
    if t > 0 and blur > 0:
        keep = torch.ones(exps[t].num_train, dtype=torch.bool)
        keep[moved_indices(exps[t], blur, seed)] = False
        own = own[keep]
    parts = [(exps[t], own)]
    if t + 1 < len(exps) and blur > 0:
        parts.append((exps[t + 1], moved_indices(exps[t + 1], blur, seed)))
    return parts


def blurred_batches(exps: list[Experience], t: int, blur: float, seed: int, batch_size: int,
                    gen: torch.Generator) -> Iterator[TrainBatch]:
    """Shuffled batches of task ``t``'s blurred stream; each sample gets its own task's transform."""
    parts = stream_parts(exps, t, blur, seed)
    owner = torch.cat([torch.full((len(idx),), k) for k, (_, idx) in enumerate(parts)])
    local = torch.cat([idx for _, idx in parts])
    perm = torch.randperm(len(owner), generator=gen)
    for i in range(0, len(perm), batch_size):
        sel = distributed.shard(perm[i: i + batch_size])  # data-parallel: this rank's piece of the batch
        yield gather_train([(parts[k][0], local[sel[owner[sel] == k]]) for k in owner[sel].unique().tolist()])
