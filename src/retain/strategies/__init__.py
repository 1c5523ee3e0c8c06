"""Continual-learning strategies, one module each, registered by name. Every module in this
folder is imported, so a new file registers its strategy without being listed here; strategies
from outside the package come through retain.plugins. ``BASE+REGULARISER`` names (``er+ewc``) are
composites built on first use (:mod:`retain.strategies.compose`)."""

from retain.registry import import_submodules
from retain.strategies.base import STRATEGIES, Strategy, register_strategy
from retain.strategies.config import StrategyConfig, hp

import_submodules(__name__, __path__)

__all__ = ["STRATEGIES", "Strategy", "StrategyConfig", "hp", "register_strategy"]
