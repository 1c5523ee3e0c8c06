"""The two data types every benchmark produces: an Experience (one task) and a Benchmark."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

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

    def prepare(self, x: Tensor, *, train: bool = False) -> Tensor:
        out = self.transform(x)
        if train and self.augment is not None:
            out = self.augment(out)
        return out

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


def split_by_classes(
    x: Tensor, y: Tensor, class_groups: list[tuple[int, ...]]
) -> list[tuple[Tensor, Tensor]]:
    """Partition (x, y) by groups of labels, keeping storage dtype (one copy overall)."""
    out = []
    for group in class_groups:
        mask = torch.isin(y, torch.tensor(group, dtype=y.dtype))
        out.append((x[mask], y[mask]))
    return out
