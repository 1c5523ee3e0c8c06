"""The members' batches, stacked ``[N, batch, ...]``: each member's own samples in its own order.

Generic path: each member's batch is gathered and transformed as the sequential loop does it
(:func:`retain.training.loop.iter_batches`), then stacked. Shared-storage path: when every member
reads the same stored images through a pixel permutation (Permuted MNIST and its kin), the rows
are gathered once for all members, converted to float once, and each member's permutation is one
``index_select`` into the stack; the values are exactly those of the generic path (indexing and
an elementwise conversion), only the number of calls drops.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from retain.benchmarks.base import Experience
from retain.data.transforms import Permute
from retain.training.loop import iter_batches


def _permutations(exps: list[Experience], storage: Tensor) -> Tensor | None:
    """The members' permutations ``[N, pixels]`` when every experience reads ``storage`` through a
    :class:`Permute` with one float conversion and no augmentation; None otherwise."""
    tfs = [e.transform for e in exps]
    if not all(isinstance(tf, Permute) for tf in tfs) or len({id(tf.to_float) for tf in tfs}) != 1:
        return None
    if any(e.augment is not None for e in exps) or storage.dtype == torch.float32:
        return None
    return torch.stack([tf.perm for tf in tfs])


def _permuted(raw: Tensor, perms: Tensor, to_float) -> Tensor:
    """Stored rows ``raw`` ``[N * b, ...]`` (member-major) -> ``[N, b, pixels]`` in each member's
    permutation, as :class:`Permute` computes them one member at a time. The permutation is one
    ``gather`` on the stored (uint8) rows, then one conversion: the same values (the conversion is
    elementwise), a quarter of the bytes moved, and one call for all members (per-member
    ``index_select`` into a fresh float stack measured 5-8x slower at N = 5, batch 128)."""
    n = perms.shape[0]
    rows = raw.reshape(n, raw.shape[0] // n, -1)
    return to_float(torch.gather(rows, 2, perms[:, None, :].expand(rows.shape)).reshape(raw.shape[0], -1)).view(
        rows.shape)


def epoch_sizes(sets: list[Experience], batch_size: int) -> list[int]:
    """The batch sizes of one pass over ``sets`` (as :func:`member_batches` and
    :func:`retain.training.loop.iter_batches` cut it: one shuffled order, ``batch_size`` at a time)."""
    n = sum(e.num_train for e in sets)
    return [min(batch_size, n - i) for i in range(0, n, batch_size)]


def member_batches(train_on: list[list[Experience]], batch_size: int,
                   gens: list[torch.Generator]) -> Iterator[tuple[Tensor, Tensor]]:
    """(inputs ``[N, b, ...]``, labels ``[N, b]``) of every step of one epoch; member i's batches
    are those :func:`retain.training.loop.iter_batches` gives it with its generator ``gens[i]``."""
    single = all(len(sets) == 1 for sets in train_on)
    exps = [sets[0] for sets in train_on]
    storage = exps[0].train_x
    perms = _permutations(exps, storage) if single and all(e.train_x is storage for e in exps) else None
    if perms is None:
        for batches in zip(*[iter_batches(sets, batch_size, g) for sets, g in zip(train_on, gens)]):
            yield torch.stack([b.x for b in batches]), torch.stack([b.y for b in batches])
        return
    # iter_batches' draw for a single experience: one randperm of its samples per epoch
    # drawn on the CPU (the same numbers on every device), used where the data are
    order = torch.stack([torch.randperm(e.num_train, generator=g) for e, g in zip(exps, gens)]).to(storage.device)
    labels = torch.stack([e.train_y for e in exps])
    rows = torch.arange(len(exps), device=storage.device)[:, None]
    for i in range(0, order.shape[1], batch_size):
        idx = order[:, i: i + batch_size]
        yield _permuted(storage.index_select(0, idx.reshape(-1)), perms, exps[0].transform.to_float), labels[rows, idx]


def member_test_batches(exps: list[Experience], batch_size: int,
                        device: torch.device | None = None) -> Iterator[tuple[Tensor, Tensor]]:
    """Each member's test set of one task, ``batch_size`` samples at a time, stacked, on
    ``device`` (test sets stay on the CPU; each batch goes over in its storage dtype)."""
    n = int(exps[0].test_y.shape[0])
    storage = exps[0].test_x
    perms = _permutations(exps, storage) if all(e.test_x is storage for e in exps) else None
    same_labels = all(e.test_y is exps[0].test_y for e in exps)
    for i in range(0, n, batch_size):
        if same_labels:
            y = exps[0].test_y[i: i + batch_size].to(device).expand(len(exps), -1)
        else:
            y = torch.stack([e.test_y[i: i + batch_size] for e in exps]).to(device)
        if perms is None:
            yield torch.stack([e.prepare(e.test_x[i: i + batch_size].to(device)) for e in exps]), y
            continue
        raw = storage[i: i + batch_size].to(device)  # the same stored rows for every member, each in its permutation
        yield _permuted(raw.repeat(len(exps), *[1] * (raw.dim() - 1)), perms, exps[0].transform.to_float), y


def shared_permutations(tested: list[list[Experience]]) -> Tensor | None:
    """``[tasks, N, pixels]``: every task's permutation for every member, when all of them read one
    stored test set through a :class:`Permute` with one float conversion (Permuted MNIST); else None."""
    storage = tested[0][0].test_x
    flat = [e for member in tested for e in member]
    if any(e.test_x is not storage or len(e.test_y) != len(flat[0].test_y) for e in flat):
        return None
    if _permutations(flat, storage) is None:
        return None
    return torch.stack([torch.stack([member[t].transform.perm for member in tested]) for t in range(len(tested[0]))])
