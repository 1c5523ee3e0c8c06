"""Naive fine-tuning: plain cross-entropy on the current task only. The lower bound."""

from retain.strategies.base import Strategy, register_strategy


@register_strategy("naive")
class Naive(Strategy):
    """Fine-tune on each task in turn with no protection against forgetting (the lower bound)."""

    cost = "no extra memory or compute"

    family = "bound"
    accepts_regularisers = True  # naive+ewc is EWC: the base of any regulariser alone
