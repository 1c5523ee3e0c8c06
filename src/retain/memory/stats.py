"""Buffer statistics any strategy can report: fill, samples seen, per-class and per-task counts,
and how evenly the buffer covers what the stream has shown. A buffer full of one class gives
false confidence that replay protects everything; these numbers make that visible."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from retain.memory.reservoir import ReservoirBuffer


def normalized_entropy(counts: Tensor, support: int) -> float:
    """Shannon entropy of ``counts`` divided by log(support): 1.0 is perfectly even over
    ``support`` categories, 0.0 is a single category. With support <= 1 it is 1.0 (nothing to
    spread over) unless the counts are empty (0.0)."""
    total = float(counts.sum())
    if total == 0:
        return 0.0
    if support <= 1:
        return 1.0
    p = counts[counts > 0].to(torch.float64) / total
    return float(-(p * p.log()).sum()) / math.log(support)


def buffer_stats(buffer: ReservoirBuffer) -> dict[str, Any]:
    """Plain-Python statistics of ``buffer`` (JSON-ready).

    ``class_entropy`` is normalised by the number of classes seen in the stream, so a buffer
    that misses seen classes scores below 1; ``task_entropy`` likewise by the tasks seen.
    ``class_coverage`` is the fraction of classes seen in the stream that the buffer holds.
    """
    labels, tasks = buffer.labels(), buffer.tasks()
    class_counts = torch.bincount(labels) if len(labels) else torch.zeros(0, dtype=torch.int64)
    task_counts = torch.bincount(tasks) if len(tasks) else torch.zeros(0, dtype=torch.int64)
    seen_classes = int((buffer.seen_per_class > 0).sum())
    held = int((class_counts > 0).sum())
    return {
        "size": len(buffer),
        "capacity": buffer.capacity,
        "fill": len(buffer) / buffer.capacity,
        "seen": buffer.seen,
        "class_counts": {int(c): int(n) for c, n in enumerate(class_counts.tolist()) if n},
        "task_counts": {int(t): int(n) for t, n in enumerate(task_counts.tolist()) if n},
        "class_entropy": normalized_entropy(class_counts, seen_classes),
        "task_entropy": normalized_entropy(task_counts, int((buffer.seen_per_task > 0).sum())),
        "class_coverage": held / seen_classes if seen_classes else 0.0,
    }
