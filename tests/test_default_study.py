"""The default study (`retain run` with no arguments) holds only strategies that are stable at
their defaults on the default benchmark: 10 seeds each, every run finishes with finite metrics."""

from __future__ import annotations

import math

import pytest

from retain.cli.run import default_strategies
from retain.config.run import RunConfig
from retain.execution.executors import ProcessPool, available_cores, run_study
from retain.store import Store
from retain.strategies import STRATEGIES


def test_default_set_has_the_bounds_and_no_experimental_method():
    names = default_strategies()
    assert {"naive", "joint"} <= set(names)
    assert not [n for n in names if STRATEGIES.get(n).experimental]
    assert "ode-memory" not in names


@pytest.mark.stability
def test_every_default_strategy_is_stable_over_ten_seeds(tmp_path):
    configs = [RunConfig(strategy=name, seed=seed, **STRATEGIES.get(name).run_defaults).validate()
               for name in default_strategies() for seed in range(10)]
    out = run_study(configs, Store(tmp_path / "r.db"), ProcessPool(available_cores())).records
    failed = [f"{r['strategy']} seed {r['seed']}: {r.get('error')}" for r in out if r["status"] != "finished"]
    assert not failed, failed
    for r in out:
        assert all(math.isfinite(v) for v in r["metrics"].values()), r["strategy"]
        assert r["metrics"]["avg_acc"] > 0.2, f"{r['strategy']} seed {r['seed']} learnt nothing"


def test_a_plugins_strategy_stays_out_of_the_default_study_unless_it_says_so():
    from retain.cli.run import in_default_study
    from retain.strategies import Strategy

    class Silent(Strategy):
        """A plugin's class that says nothing about the default study."""

    class Joining(Strategy):
        default_study = True

    class JoiningChild(Joining):
        pass

    assert not in_default_study(Silent)
    assert in_default_study(Joining) and in_default_study(JoiningChild)
    assert in_default_study(STRATEGIES.get("er")) and not in_default_study(STRATEGIES.get("cumulative"))


def test_the_docs_name_one_default_for_workers_and_say_what_retain_list_marks():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    studies = (root / "docs" / "studies.md").read_text()
    defaults = re.findall(r"`--workers (\w+)`\s*\((?:the )?default\)", studies)
    assert defaults and set(defaults) == {"auto"}, defaults
    readme = " ".join((root / "README.md").read_text().split())
    assert "built-ins are unmarked" in readme and "every benchmark, strategy, backbone, metric and logger with " \
                                                  "one line each and where it comes from" not in readme
    extending = " ".join((root / "docs" / "extending.md").read_text().split())
    assert "False for a plugin's strategy unless its class sets `default_study = True`" in extending
