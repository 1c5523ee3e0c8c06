"""Buffer saturation: how full a replay buffer is, how evenly it covers the classes (and tasks)
seen so far, and events when it is homogeneous or misses seen classes.

Reads the statistics a replay strategy returns from ``Strategy.stats()``, at the top level or
under ``"buffer"`` (as ``retain.memory.stats.buffer_stats`` gives them). Accepted keys (the
first found wins): fill ``fill`` (a fraction) or ``size``/``capacity``; counts
``class_counts`` and ``task_counts`` (mappings label -> count, keys may be strings after JSON).
Entropies are recomputed here from the counts and normalised by log(number of seen classes),
so 1 means perfectly balanced over what has been seen and 0 means one class only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from retain.diagnostics import Event, make_event


def _counts(stats: Mapping[str, Any], key: str) -> dict[int, int] | None:
    for k in (key, f"buffer_{key}"):
        c = stats.get(k)
        if isinstance(c, Mapping):
            return {int(a): int(b) for a, b in c.items()}
        if isinstance(c, (list, tuple)):
            return {i: int(b) for i, b in enumerate(c)}
    return None


def fill_fraction(stats: Mapping[str, Any]) -> float | None:
    for k in ("fill", "buffer_fill"):
        if k in stats:
            return float(stats[k])
    size, cap = stats.get("size", stats.get("buffer_size")), stats.get("capacity", stats.get("buffer_capacity"))
    return float(size) / float(cap) if size is not None and cap else None


def normalised_entropy(counts: Mapping[int, int], support: int) -> float:
    """Shannon entropy of ``counts`` divided by log(``support``); 1.0 when support <= 1."""
    total = sum(counts.values())
    if support <= 1 or total <= 0:
        return 1.0
    h = -sum(c / total * math.log(c / total) for c in counts.values() if c > 0)
    return h / math.log(support)


def buffer_probes(stats: Mapping[str, Any], seen_classes: Iterable[int], seen_tasks: int) -> dict[str, float]:
    """fill, class/task entropy (normalised) and coverage of seen classes; {} without a buffer."""
    if isinstance(stats.get("buffer"), Mapping):  # replay strategies nest them (retain.memory.stats)
        stats = stats["buffer"]
    seen = set(seen_classes)
    fill, classes, tasks = fill_fraction(stats), _counts(stats, "class_counts"), _counts(stats, "task_counts")
    out: dict[str, float] = {}
    if fill is not None:
        out["buffer_fill"] = fill
    if classes is not None:
        present = {c for c, n in classes.items() if n > 0}
        out["buffer_class_entropy"] = normalised_entropy(classes, len(seen))
        out["buffer_class_coverage"] = len(present & seen) / len(seen) if seen else 1.0
    if tasks is not None:
        out["buffer_task_entropy"] = normalised_entropy(tasks, seen_tasks)
        out["buffer_task_coverage"] = sum(1 for n in tasks.values() if n > 0) / max(seen_tasks, 1)
    return out


def buffer_events(probes: Mapping[str, float], task: int, *, min_entropy: float = 0.5,
                  min_coverage: float = 1.0) -> list[Event]:
    """Events: class entropy below ``min_entropy`` (homogeneous) and seen classes missing."""
    out = []
    ent, cov = probes.get("buffer_class_entropy"), probes.get("buffer_class_coverage")
    if ent is not None and ent < min_entropy:
        out.append(make_event("buffer_homogeneous", task, ent, min_entropy,
                              f"replay buffer is homogeneous: class entropy {ent:.2f} (normalised) < "
                              f"{min_entropy:.2f}; use class-balanced sampling or a larger buffer"))
    if cov is not None and cov < min_coverage:
        out.append(make_event("buffer_missing_classes", task, cov, min_coverage,
                              f"replay buffer covers only {100 * cov:.0f}% of the classes seen so far; "
                              "enlarge the buffer or switch to a class-balanced buffer"))
    return out
