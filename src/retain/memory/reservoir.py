"""Reservoir replay buffer (Vitter's Algorithm R) over preallocated tensors.

Algorithm R (Vitter, "Random sampling with a reservoir", ACM TOMS 1985): the n-th stream item
(0-based) goes to slot n while n < M; afterwards draw j uniformly from {0, ..., n} and overwrite
slot j when j < M. Every item seen so far is then in the buffer with probability M / n_seen.

A whole batch is inserted with tensor operations. The result is exactly that of inserting its
items one by one with the same random draws: when two items of a batch land on the same slot,
the later one wins, as it would sequentially.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


def reservoir_slots(seen: int, capacity: int, u: Tensor) -> Tensor:
    """Target slot of each of ``len(u)`` new stream items under Algorithm R, -1 for "discard".

    Args:
        seen: items of the stream seen before this batch.
        capacity: buffer size M.
        u: one uniform draw in [0, 1) per new item (float64, so that n up to 2**50 stays exact).
    """
    n = torch.arange(seen, seen + len(u), dtype=torch.int64)
    j = torch.floor(u.to(torch.float64) * (n + 1).to(torch.float64)).to(torch.int64)
    slots = torch.where(n < capacity, n, j)
    return torch.where(slots < capacity, slots, torch.full_like(slots, -1))


def last_writer(slots: Tensor, capacity: int) -> tuple[Tensor, Tensor]:
    """(slot, item index) pairs where each slot keeps only the last item of the batch aimed at it."""
    items = (slots >= 0).nonzero().squeeze(1)
    if len(items) <= 1:  # the usual case once the stream is long: no collision possible, no scatter
        return slots[items], items
    winner = torch.full((capacity,), -1, dtype=torch.int64)
    winner.scatter_reduce_(0, slots[items], items, reduce="amax")
    written = (winner >= 0).nonzero().squeeze(1)
    return written, winner[written]


def _bump(counter: Tensor, values: Tensor) -> Tensor:
    counts = torch.bincount(values.to(torch.int64), minlength=len(counter))
    counts[: len(counter)] += counter
    return counts


@dataclass
class ReplayBatch:
    """A draw from a buffer: inputs, labels, task ids, stored logits (or None), and slot indices."""

    x: Tensor
    y: Tensor
    task: Tensor
    logits: Tensor | None
    index: Tensor


class ReservoirBuffer:
    """A fixed-size uniform sample of everything seen, stored as preallocated tensors.

    Inputs are stored in the dtype and shape of the first batch inserted, on its device (labels,
    task ids and stream counts follow it there); memory never grows past ``capacity`` rows whatever
    the stream length. ``sample`` draws without replacement. The random draws and the slot indices
    they give are made on the CPU, as on a CPU run, whatever the device.
    """

    def __init__(self, capacity: int, *, seed: int | None = None):
        if capacity < 1:
            raise ValueError(f"buffer capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.seen = 0
        self.generator = torch.Generator()
        # Derive from the global RNG by default so a run's seed fixes the buffer's draws too.
        self.generator.manual_seed(int(torch.randint(2**62, ())) if seed is None else seed)
        self.x: Tensor | None = None
        self.y = torch.zeros(self.capacity, dtype=torch.int64)
        self.task = torch.zeros(self.capacity, dtype=torch.int64)
        self.logits: Tensor | None = None
        self.seen_per_class = torch.zeros(0, dtype=torch.int64)  # label counts of the whole stream
        self.seen_per_task = torch.zeros(0, dtype=torch.int64)

    def __len__(self) -> int:
        return min(self.seen, self.capacity)

    def _allocate(self, x: Tensor, logits: Tensor | None) -> None:
        self.x = torch.zeros((self.capacity, *x.shape[1:]), dtype=x.dtype, device=x.device)
        self.y, self.task = self.y.to(x.device), self.task.to(x.device)
        self.seen_per_class, self.seen_per_task = self.seen_per_class.to(x.device), self.seen_per_task.to(x.device)
        if logits is not None:
            self.logits = torch.zeros((self.capacity, *logits.shape[1:]), dtype=logits.dtype, device=x.device)

    def add(self, x: Tensor, y: Tensor, task: int | Tensor = 0, logits: Tensor | None = None) -> int:
        """Offer a batch to the reservoir; returns how many of its items were stored."""
        if self.x is None:
            self._allocate(x, logits)
        b = int(y.shape[0])
        u = torch.rand(b, generator=self.generator, dtype=torch.float64)
        slots, items = last_writer(reservoir_slots(self.seen, self.capacity, u), self.capacity)
        self._count_stream(y, task)
        if len(slots) == 0:
            return 0
        self.x[slots] = x.detach()[items].to(self.x.dtype)
        self.y[slots] = y[items].to(torch.int64)
        self.task[slots] = task[items] if isinstance(task, Tensor) else task
        if logits is not None:
            if self.logits is None:
                raise ValueError("this buffer was created without logits; pass logits from the first batch on")
            self.logits[slots] = logits.detach()[items].to(self.logits.dtype)
        return len(slots)

    def _count_stream(self, y: Tensor, task: int | Tensor) -> None:
        """Count what the stream showed (not what was kept): the denominators of the statistics."""
        b = int(y.shape[0])
        self.seen += b
        self.seen_per_class = _bump(self.seen_per_class, y)
        if isinstance(task, Tensor):
            self.seen_per_task = _bump(self.seen_per_task, task)
        else:  # the common case, one task id per batch: no tensor op on the hot path
            if task >= len(self.seen_per_task):
                self.seen_per_task = torch.cat([self.seen_per_task,
                                                torch.zeros(task + 1 - len(self.seen_per_task), dtype=torch.int64,
                                                            device=self.seen_per_task.device)])
            self.seen_per_task[task] += b

    def sample(self, k: int) -> ReplayBatch:
        """``min(k, len(self))`` distinct items, uniformly at random."""
        size = len(self)
        if size == 0:
            raise ValueError("cannot sample from an empty buffer")
        idx = torch.randperm(size, generator=self.generator)[: min(k, size)]
        logits = self.logits[idx] if self.logits is not None else None
        return ReplayBatch(self.x[idx], self.y[idx], self.task[idx], logits, idx)

    # ---- views and checkpoints ----------------------------------------------------------------
    def labels(self) -> Tensor:
        return self.y[: len(self)]

    def tasks(self) -> Tensor:
        return self.task[: len(self)]

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and ints only, so ``torch.load(weights_only=True)`` can read it back."""
        return {"capacity": self.capacity, "seen": self.seen, "x": self.x, "y": self.y, "task": self.task,
                "logits": self.logits, "seen_per_class": self.seen_per_class, "seen_per_task": self.seen_per_task,
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["capacity"]) != self.capacity:
            raise ValueError(f"buffer capacity mismatch: checkpoint {state['capacity']}, this buffer {self.capacity}")
        if int(state["seen"]) < 0:
            raise ValueError(f"buffer has seen {state['seen']} samples")
        for name in ("x", "y", "task", "logits"):  # storage of `capacity` rows each, once allocated
            value = state[name]
            if value is None and name in ("x", "logits"):
                continue
            if not isinstance(value, Tensor) or value.ndim < 1 or value.shape[0] != self.capacity:
                raise ValueError(f"buffer {name} is not {self.capacity} rows, got "
                                 f"{tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__}")
        self.seen = int(state["seen"])
        self.x, self.y, self.task, self.logits = state["x"], state["y"], state["task"], state["logits"]
        self.seen_per_class, self.seen_per_task = state["seen_per_class"], state["seen_per_task"]
        self.generator.set_state(state["generator"])
