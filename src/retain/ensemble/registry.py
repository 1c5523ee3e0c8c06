"""The built-in strategies' batched implementations, by the exact sequential class they mirror."""

from __future__ import annotations

from retain.ensemble.base import EnsembleStrategy
from retain.ensemble.regularised import EnsembleEWC, EnsembleLwF, EnsembleSI
from retain.ensemble.replay import EnsembleAGEM, EnsembleDER, EnsembleDERpp, EnsembleER
from retain.strategies.naive import Naive


class EnsembleNaive(EnsembleStrategy):
    """:class:`retain.strategies.naive.Naive` for N members."""

    strategy = Naive


#: Sequential strategy class -> its batched implementation.
BATCHED: dict[type, type[EnsembleStrategy]] = {
    impl.strategy: impl for impl in (EnsembleNaive, EnsembleER, EnsembleDER, EnsembleDERpp, EnsembleAGEM, EnsembleEWC,
                                     EnsembleSI, EnsembleLwF)
}
