"""Batched seeds: the runs of one configuration that differ only in seed and task order, trained
as one vectorised ensemble (stacked parameters, ``torch.func.vmap`` over ``functional_call``).
See docs/architecture.md, "The ensemble path"."""

from retain.ensemble.support import Ensemble, plan, unsupported

__all__ = ["Ensemble", "plan", "unsupported"]
