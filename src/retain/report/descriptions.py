"""One line per strategy on what it costs to use: the "complexity" column of the comparison
table. Unknown strategies fall back to the first line of their class docstring."""

from __future__ import annotations

COMPLEXITY = {
    "naive": "plain fine-tuning; no extra memory or compute (the lower bound)",
    "joint": "retrains on all data seen so far; memory and compute grow with every task (the upper bound)",
    "ewc": "one quadratic penalty; stores a parameter copy and a diagonal Fisher per task "
           "(online: one of each), one extra pass over the data at each task's end",
    "si": "one quadratic penalty; importances accumulated along the training path, 3 parameter-sized tensors",
    "lwf": "distillation from a frozen copy of the previous model; one extra forward pass per batch, no data kept",
    "er": "a reservoir buffer of past samples; one extra forward/backward on a buffer batch per step",
    "agem": "a reservoir buffer; one extra gradient on a buffer batch and a projection per step",
    "der": "a buffer of samples with their logits; one extra forward on a buffer batch per step",
    "derpp": "a buffer of samples with their logits; two extra forwards on buffer batches per step",
}


def complexity(strategy: str) -> str:
    if strategy in COMPLEXITY:
        return COMPLEXITY[strategy]
    try:
        from retain.strategies import STRATEGIES

        doc = STRATEGIES.get(strategy).__doc__ or ""
        return doc.strip().splitlines()[0] if doc.strip() else "—"
    except Exception:  # noqa: BLE001 - a report must render even for a strategy no longer installed
        return "—"
