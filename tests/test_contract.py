"""Contract tests generated from the registry: every strategy, with no test written for it,
runs two tiny tasks, task-aware and (where it allows) task-free, and returns a sane result."""

import math

import pytest

from retain.config.run import RunConfig
from retain.errors import ConfigError
from retain.strategies import STRATEGIES
from retain.training.loop import run_experiment

# Small values for hyperparameters some strategies have; keys a strategy lacks are ignored.
TINY = {"buffer_size": 32, "replay_batch_size": 16}


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_strategy_runs_two_tiny_tasks(name):
    res = run_experiment(RunConfig(benchmark="synthetic", strategy=name, params=TINY))
    R = res.acc_matrix
    assert len(R) == 2 and all(len(row) == 2 for row in R)
    assert all(0.0 <= v <= 1.0 for row in R for v in row)
    assert all(math.isfinite(v) for v in res.metrics.values())
    if STRATEGIES.get(name).trains_once:  # joint: trained at the last task only, on everything
        assert R[-1][0] > 0.6, f"{name} did not learn the first task: {R}"
        assert set(res.metrics) == {"avg_acc"}, "only the final accuracy means something when trained once"
    else:
        assert R[0][0] > 0.6, f"{name} did not learn the first task: {R}"
        assert {"avg_acc", "forgetting", "bwt", "fwt", "learning_acc"} <= set(res.metrics)
    assert isinstance(STRATEGIES.get(name).__doc__, str), "every strategy needs a docstring"


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_strategy_task_free_or_refused(name):
    cfg = RunConfig(benchmark="synthetic", strategy=name, params=TINY, task_free=True)
    if STRATEGIES.get(name).needs_boundaries:
        with pytest.raises(ConfigError, match="needs task boundaries"):
            run_experiment(cfg)
    else:
        assert len(run_experiment(cfg).acc_matrix) == 2
