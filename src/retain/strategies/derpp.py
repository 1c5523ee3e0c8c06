"""DER++ (Buzzega et al., NeurIPS 2020, arXiv:2004.07211): DER plus ``beta`` times the
cross-entropy of a second, independent buffer draw against its stored labels.

A variant, not a copy: this is :class:`retain.strategies.der.DER` registered under its own name
with DER++'s defaults (the authors' P-MNIST best values for buffer 500: alpha 1.0, beta 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

from retain.strategies.base import register_strategy
from retain.strategies.config import hp
from retain.strategies.der import DER, DERConfig


@dataclass
class DERppConfig(DERConfig):
    beta: float = hp(0.5, "weight of the replayed-label CE term (0 is DER, > 0 is DER++)", low=0.0)


@register_strategy("derpp")
class DERpp(DER):
    """DER with a second buffer draw trained on its labels (``beta > 0``)."""

    cost = "a buffer of samples with their logits; two extra forwards on buffer batches per step"

    Config = DERppConfig
