"""Continual-learning strategies, one file each, registered by name; ``BASE+REGULARISER`` names
(``er+ewc``) are composites built on demand (:mod:`retain.strategies.compose`)."""

from retain.strategies import (  # noqa: F401
    agem,
    compose,  # composites by name (er+ewc), built on first use
    cumulative,
    der,
    derpp,
    er,
    ewc,
    joint,
    lwf,
    naive,
    ode_memory,
    online_lora,
    si,
)
from retain.strategies.base import STRATEGIES, Strategy, register_strategy
from retain.strategies.config import StrategyConfig, hp

__all__ = ["STRATEGIES", "Strategy", "StrategyConfig", "hp", "register_strategy"]
