"""Same config and seed, same numbers: every registered strategy (read from the registry when the
tests run, so new methods are included without a line here) gives a bit-identical accuracy
matrix twice in one process and once more in a freshly spawned worker process."""

from __future__ import annotations

import multiprocessing
import random

import numpy as np
import pytest
import torch

from retain.config.run import RunConfig
from retain.strategies import STRATEGIES
from retain.training.loop import RunResult, run_experiment

# Small values for hyperparameters some strategies have (the buffer must fit the tiny data).
TINY = {"buffer_size": 32, "replay_batch_size": 16}
_FIRST: dict[str, RunResult] = {}


def _cfg(strategy: str) -> RunConfig:
    return RunConfig(benchmark="synthetic", strategy=strategy, tasks=3, seed=0, params=dict(TINY))


def _numbers(r: RunResult) -> tuple:
    return r.acc_matrix, r.baseline, r.losses


def _first(strategy: str) -> RunResult:
    if strategy not in _FIRST:
        _FIRST[strategy] = run_experiment(_cfg(strategy))
    return _FIRST[strategy]


@pytest.mark.parametrize("strategy", STRATEGIES.names())
def test_twice_in_process_is_bit_identical(strategy):
    first = _first(strategy)
    # Disturb every global generator: the run must seed what it uses, not inherit it.
    torch.manual_seed(987)
    random.seed(987)
    np.random.seed(987)
    torch.rand(10)
    second = run_experiment(_cfg(strategy))
    assert _numbers(second) == _numbers(first)
    assert second.key == first.key


@pytest.mark.slow
def test_a_spawned_worker_gives_the_same_numbers():
    # the built-in strategies: other tests register plugins (my-er) and composites that a spawned worker
    # never imported
    names = [n for n in STRATEGIES.names() if "+" not in n and STRATEGIES.get(n).__module__.startswith("retain.")]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        remote = pool.map(run_experiment, [_cfg(n) for n in names])
    for name, r in zip(names, remote):
        assert _numbers(r) == _numbers(_first(name)), f"{name}: worker and in-process differ"
