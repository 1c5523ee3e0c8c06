"""Intransigence: a method that learns each new task far worse than naive fine-tuning in the same
study. Its forgetting looks low because there is little to forget, so the usual advice for
forgetting (raise the penalty, enlarge the buffer) points the wrong way: it needs less
constraint, not more. Measured from the stored accuracy matrices (learning accuracy is the mean
of R[i][i]) against naive's mean on the same benchmark; the bounds are never flagged."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from retain.diagnostics import advice as adv
from retain.metrics.registry import metrics_of

#: How far (fraction of accuracy) a method's mean learning accuracy must fall below naive's.
GAP = 0.15

_ADVICE = {
    "regularisation": "lower the penalty's strength (e.g. --ewc-lambda, --si-c, --lwf-alpha)",
    "replay": "lower the weight of the replayed terms (e.g. --alpha, --beta) or check --lr",
}
_OTHER = "check --lr, --epochs and the method's hyperparameters"
#: The advice for forgetting of a method that barely learns, in place of its family's.
FORGETTING_ADVICE = "it learns little (see its learning accuracy), so more constraint would not help"


@dataclass(frozen=True)
class LowLearning:
    benchmark: str
    strategy: str
    learning_acc: float  # the method's mean learning accuracy (fraction)
    naive: float  # naive's on the same benchmark

    def advice(self) -> str:
        return _ADVICE.get(adv.family_of(self.strategy), _OTHER)

    def fact(self) -> str:
        return (f"learning accuracy {100 * self.learning_acc:.1f}% against naive's {100 * self.naive:.1f}%: it "
                "barely learns new tasks (intransigence), so its low forgetting is not retention")


def low_learners(records: list[dict[str, Any]], gap: float = GAP) -> dict[tuple[str, str], LowLearning]:
    """(benchmark, strategy) -> the finding, for each method whose mean learning accuracy is at
    least ``gap`` below naive's on its benchmark (none where naive did not run)."""
    learn: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in records:
        if r.get("status", "finished") == "finished":
            m = metrics_of(r)
            if "learning_acc" in m:
                learn[(r.benchmark, r.strategy)].append(m["learning_acc"])
    out = {}
    for (bench, strat), values in learn.items():
        naive = learn.get((bench, "naive"))
        if not naive or adv.is_bound(strat):
            continue
        mine, ref = sum(values) / len(values), sum(naive) / len(naive)
        if ref - mine >= gap:
            out[(bench, strat)] = LowLearning(bench, strat, mine, ref)
    return out
