"""The two data types every benchmark produces: an Experience (one task) and a Benchmark."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor

SCENARIOS = ("task-il", "class-il", "domain-il")

BatchTransform = Callable[[Tensor], Tensor]


@dataclass(eq=False)
class Experience:
    """One task of a stream.

    ``train_x``/``test_x`` hold inputs in their storage dtype and may be shared between
    experiences (Permuted MNIST keeps MNIST once); ``transform`` turns a gathered batch into the
    float tensor the model sees, and ``augment`` (train only) perturbs that float batch.
    """

    task_id: int
    classes: tuple[int, ...]
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    transform: BatchTransform
    name: str = ""
    augment: BatchTransform | None = None
    origin: int = -1  # index of this task before the task order was applied
    #: tokens in each training row (text tasks): batches are drawn in buckets of similar lengths
    lengths: Tensor | None = None
    #: a batch as fixed features for the task-dissimilarity probe, where the inputs themselves are not
    #: (token ids); None: the transformed inputs
    featurize: BatchTransform | None = None

    def prepare(self, x: Tensor, *, train: bool = False) -> Tensor:
        out = self.transform(x)
        if train and self.augment is not None:
            out = self.augment(out)
        return out

    def train_inputs(self, idx: Tensor) -> tuple[Tensor, Tensor | None]:
        """(inputs to train on, the same inputs before augmentation) for the training samples at
        ``idx``; the second is None when this task has no augmentation (nothing extra is made)."""
        plain = self.transform(self.train_x[idx])
        if self.augment is None:
            return plain, None
        return self.augment(plain), plain

    @property
    def num_train(self) -> int:
        return int(self.train_y.shape[0])


@dataclass
class Benchmark:
    """An ordered stream of experiences and what evaluation needs to know about it."""

    name: str
    experiences: list[Experience]
    scenario: str
    input_shape: tuple[int, ...]
    num_classes: int
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(f"scenario must be one of {SCENARIOS}, got {self.scenario!r}")

    def __len__(self) -> int:
        return len(self.experiences)

    def with_order(self, order: int) -> Benchmark:
        """The same tasks in a seeded order; order 0 keeps the natural order."""
        n = len(self.experiences)
        if order == 0:
            perm = list(range(n))
        else:
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(order)).tolist()
        exps = [
            dataclasses.replace(e := self.experiences[p], task_id=i, origin=e.origin if e.origin >= 0 else p)
            for i, p in enumerate(perm)
        ]
        return dataclasses.replace(self, experiences=exps, info={**self.info, "task_order": perm})


class TrainBatch(NamedTuple):
    """One training batch. ``plain`` holds the same samples transformed but not augmented (what a
    replay buffer should store, to augment again when it replays them); None when no sample of the
    batch is augmented, so the common case costs nothing extra."""

    x: Tensor
    y: Tensor
    plain: Tensor | None


def gather_train(parts: list[tuple[Experience, Tensor]]) -> TrainBatch:
    """One training batch from (experience, training indices) pieces; each sample gets its own
    task's transform and augmentation."""
    if len(parts) == 1:
        exp, idx = parts[0]
        x, plain = exp.train_inputs(idx)
        return TrainBatch(x, exp.train_y[idx], plain)
    inputs = [exp.train_inputs(idx) for exp, idx in parts]
    x = torch.cat([a for a, _ in inputs])
    y = torch.cat([exp.train_y[idx] for exp, idx in parts])
    if all(p is None for _, p in inputs):
        return TrainBatch(x, y, None)
    return TrainBatch(x, y, torch.cat([a if p is None else p for a, p in inputs]))


#: batches per bucket of :func:`bucketed`: enough for similar lengths, few enough that a bucket's
#: batches still mix samples from all over the shuffled order
BUCKET_BATCHES = 20


def bucketed(perm: Tensor, lengths: Tensor, batch_size: int, gen: torch.Generator) -> Tensor:
    """``perm`` reordered so that each batch of ``batch_size`` holds samples of similar ``lengths``: the
    shuffled order is cut into buckets of :data:`BUCKET_BATCHES` batches, each bucket sorted by length
    (stable) and cut into batches, and the batches of all buckets shuffled with ``gen``. Every sample
    still comes once an epoch, in an order that depends only on ``gen``; a last batch short of
    ``batch_size`` stays last, so the loop's cuts fall on the batches' edges."""
    chunk = batch_size * BUCKET_BATCHES
    pieces = []
    for i in range(0, len(perm), chunk):
        part = perm[i: i + chunk]
        pieces.append(part[torch.argsort(lengths[part], stable=True)])
    ordered = torch.cat(pieces) if pieces else perm
    batches = list(torch.split(ordered, batch_size))
    if not batches:
        return perm
    last = batches.pop() if len(batches[-1]) < batch_size else None  # stays last: the loop cuts batch_size pieces
    order = [batches[j] for j in torch.randperm(len(batches), generator=gen).tolist()]
    return torch.cat(order + ([last] if last is not None else []))


def split_by_classes(
    x: Tensor, y: Tensor, class_groups: list[tuple[int, ...]]
) -> list[tuple[Tensor, Tensor]]:
    """Partition (x, y) by groups of labels, keeping storage dtype (one copy overall)."""
    out = []
    for group in class_groups:
        mask = torch.isin(y, torch.tensor(group, dtype=y.dtype))
        out.append((x[mask], y[mask]))
    return out
