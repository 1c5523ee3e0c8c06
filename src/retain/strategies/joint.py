"""Joint training: one model trained once on the union of every task's data. The upper bound.

As in the DER paper (Buzzega et al., NeurIPS 2020, arXiv:2004.07211, "JOINT") and its Mammoth
code (``models/joint.py``): nothing is trained while the tasks arrive; at the last task the model
is re-initialised and trained for ``epochs`` passes over all tasks' data, shuffled together.
Here the re-initialisation is the run's own initial weights (same seed, same batch order), so the
final model is exactly a fresh model of that seed trained on everything (see ``retain.training.loop``).

What it measures: only the final average accuracy (``avg_acc``). The accuracy-matrix rows before
the last task are of the untrained model, so forgetting, BWT, FWT and learning accuracy are left
out of its metrics. Training on everything seen so far at every task instead is ``cumulative``.
"""

from retain.benchmarks.base import Experience
from retain.strategies.base import Strategy, register_strategy


@register_strategy("joint")
class Joint(Strategy):
    """Re-initialise at the last task and train once on all tasks' data (needs task boundaries)."""

    cost = "all tasks' data at once, one training from scratch on their union"

    family = "bound"
    needs_boundaries = True
    trains_once = True

    def training_experiences(self, seen: list[Experience]) -> list[Experience]:
        return list(seen)  # asked at the last task only, where ``seen`` is every task
