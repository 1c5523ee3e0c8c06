"""Joint training: at each task, train on the union of every task seen so far. The upper bound."""

from retain.benchmarks.base import Experience
from retain.strategies.base import Strategy, register_strategy


@register_strategy("joint")
class Joint(Strategy):
    """Train on all data seen so far, shuffled together (the upper bound; needs task boundaries)."""

    family = "bound"

    needs_boundaries = True

    def training_experiences(self, seen: list[Experience]) -> list[Experience]:
        return list(seen)
