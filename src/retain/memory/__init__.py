"""Replay buffers (reservoir, class-balanced) and their statistics. Plain objects that
strategies create and call; they know nothing of strategies."""

from retain.memory.balanced import ClassBalancedBuffer
from retain.memory.reservoir import ReplayBatch, ReservoirBuffer, last_writer, reservoir_slots
from retain.memory.stats import buffer_stats, normalized_entropy

__all__ = ["ClassBalancedBuffer", "ReplayBatch", "ReservoirBuffer", "buffer_stats", "last_writer",
           "normalized_entropy", "reservoir_slots"]
