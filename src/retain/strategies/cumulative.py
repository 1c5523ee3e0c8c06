"""Cumulative training: at each task, keep training the same model on the union of every task
seen so far (Avalanche's ``Cumulative`` strategy). An upper-bound-like reference whose memory and
compute grow with every task; unlike ``joint`` it is a continual learner, so every row of its
accuracy matrix, and every metric, means something.
"""

from retain.benchmarks.base import Experience
from retain.strategies.base import Strategy, register_strategy


@register_strategy("cumulative")
class Cumulative(Strategy):
    """Continue training on all data seen so far, shuffled together (needs task boundaries)."""

    cost = "keeps every task's data; the data trained on (and the compute) grows with every task"

    family = "bound"
    needs_boundaries = True
    accepts_regularisers = True
    default_study = False  # joint is the default study's upper bound; this one costs T(T+1)/2 tasks of training

    def training_experiences(self, seen: list[Experience]) -> list[Experience]:
        return list(seen)
