"""Class-balanced replay buffer: an equal share of the slots for every class seen so far.

Each class keeps its own reservoir (Algorithm R over that class's items) inside its quota of
``capacity // classes`` slots (the first ``capacity % classes`` classes to arrive get one more).
When a new class arrives the quotas shrink and every over-full class drops a uniformly random
subset of its items, so each class's share stays a uniform sample of that class's stream — the
rebalancing rule of class-balanced reservoir sampling (Chrysakis & Moens, ICML 2020, "CBRS").
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from retain.memory.reservoir import ReplayBatch, ReservoirBuffer, last_writer, reservoir_slots


class ClassBalancedBuffer(ReservoirBuffer):
    """Same storage and sampling as :class:`ReservoirBuffer`; only the insertion rule differs."""

    def __init__(self, capacity: int, *, seed: int | None = None):
        super().__init__(capacity, seed=seed)
        self.owner = torch.full((self.capacity,), -1, dtype=torch.int64)  # class in each slot, -1 free
        self.arrival: list[int] = []  # classes in order of first appearance

    def __len__(self) -> int:
        return int((self.owner >= 0).sum())

    def quota(self, cls: int) -> int:
        k = len(self.arrival)
        return self.capacity // k + (1 if self.arrival.index(cls) < self.capacity % k else 0)

    def _rebalance(self) -> None:
        for cls in self.arrival:
            slots = (self.owner == cls).nonzero().squeeze(1)
            surplus = len(slots) - self.quota(cls)
            if surplus > 0:
                drop = slots[torch.randperm(len(slots), generator=self.generator)[:surplus]]
                self.owner[drop] = -1

    def add(self, x: Tensor, y: Tensor, task: int | Tensor = 0, logits: Tensor | None = None) -> int:
        if self.x is None:
            self._allocate(x, logits)
        new = [c for c in y.unique().tolist() if c not in self.arrival]
        if new:
            self.arrival += new
            self._rebalance()
        task_t = torch.as_tensor(task, dtype=torch.int64, device=y.device).expand(y.shape[0])
        stored = 0
        for cls in y.unique().tolist():  # a loop over classes, not samples
            items = (y == cls).nonzero().squeeze(1)
            slots, chosen = self._class_slots(cls, len(items))
            stored += self._write(slots, items[chosen], x, y, task_t, logits)
        self._count_stream(y, task)
        return stored

    def _class_slots(self, cls: int, count: int) -> tuple[Tensor, Tensor]:
        """Slots for ``count`` new items of ``cls``: free slots while under quota, then reservoir."""
        seen_c = int(self.seen_per_class[cls]) if cls < len(self.seen_per_class) else 0
        mine = (self.owner == cls).nonzero().squeeze(1)
        fill = min(count, self.quota(cls) - len(mine))
        free = (self.owner < 0).nonzero().squeeze(1)[:fill]
        self.owner[free] = cls
        mine = torch.cat([mine, free])
        rest = count - fill
        u = torch.rand(rest, generator=self.generator, dtype=torch.float64)
        local, chosen = last_writer(reservoir_slots(seen_c + fill, len(mine), u), len(mine))
        return torch.cat([free, mine[local]]), torch.cat([torch.arange(fill), chosen + fill])

    def _write(self, slots: Tensor, items: Tensor, x: Tensor, y: Tensor, task: Tensor, logits: Tensor | None) -> int:
        if len(slots) == 0:
            return 0
        self.x[slots] = x.detach()[items].to(self.x.dtype)
        self.y[slots] = y[items].to(torch.int64)
        self.task[slots] = task[items]
        if logits is not None and self.logits is not None:
            self.logits[slots] = logits.detach()[items].to(self.logits.dtype)
        return len(slots)

    def sample(self, k: int) -> ReplayBatch:
        filled = (self.owner >= 0).nonzero().squeeze(1)
        if len(filled) == 0:
            raise ValueError("cannot sample from an empty buffer")
        idx = filled[torch.randperm(len(filled), generator=self.generator)[: min(k, len(filled))]]
        logits = self.logits[idx] if self.logits is not None else None
        return ReplayBatch(self.x[idx], self.y[idx], self.task[idx], logits, idx)

    def labels(self) -> Tensor:
        return self.y[self.owner >= 0]

    def tasks(self) -> Tensor:
        return self.task[self.owner >= 0]

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"owner": self.owner, "arrival": torch.tensor(self.arrival, dtype=torch.int64)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.owner = state["owner"]
        self.arrival = state["arrival"].tolist()
