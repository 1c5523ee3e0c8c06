"""What a strategy is and what it costs, for the comparison table. What it is comes from its own
class docstring (so a new strategy describes itself); what it costs in memory and compute is
written here for the built-ins, since a docstring's first line rarely says."""

from __future__ import annotations

COMPLEXITY = {
    "naive": "no extra memory or compute",
    "joint": "all tasks' data at once, one training from scratch on their union",
    "cumulative": "keeps every task's data; the data trained on (and the compute) grows with every task",
    "ewc": "stores a parameter copy and a diagonal Fisher per task (online: one of each); one extra pass "
           "over the data at each task's end",
    "si": "3 parameter-sized tensors, updated at every step",
    "lwf": "a frozen copy of the previous model; one extra forward pass per batch, no data kept",
    "er": "a reservoir buffer of past samples; one extra forward/backward on a buffer batch per step",
    "agem": "a reservoir buffer; one extra gradient on a buffer batch and a projection per step",
    "der": "a buffer of samples with their logits; one extra forward on a buffer batch per step",
    "derpp": "a buffer of samples with their logits; two extra forwards on buffer batches per step",
}


def summary(strategy: str) -> str:
    """The first line of the strategy class's docstring ("—" when it has none or is not installed)."""
    try:
        from retain.strategies import STRATEGIES

        doc = (STRATEGIES.get(strategy).__doc__ or "").strip()
    except Exception:  # noqa: BLE001 - a report must render even for a strategy no longer installed
        return "—"
    return doc.splitlines()[0].strip() if doc else "—"


def complexity(strategy: str) -> str:
    """What ``strategy`` costs; a composite (``er+ewc``) costs what each of its parts does."""
    parts = strategy.split("+")
    if strategy not in COMPLEXITY and len(parts) > 1 and all(p in COMPLEXITY for p in parts):
        return "; ".join(f"{p}: {COMPLEXITY[p]}" for p in parts)
    return COMPLEXITY.get(strategy, "—")
