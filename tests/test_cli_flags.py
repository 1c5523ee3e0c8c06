"""Hyperparameter flags of `retain run`: a shared flag goes to the selected strategies that have
that field, `--hp STRATEGY.NAME=VALUE` to one strategy, and no flag changes what a method is."""

from __future__ import annotations

from retain.cli.main import build_parser
from retain.cli.run import _configs


def configs(*argv: str):
    args = build_parser().parse_args(["run", "--benchmark", "synthetic", "--seeds", "1", *argv])
    return {c.strategy: c for c in _configs(args)}


def test_shared_beta_goes_to_derpp_only_and_der_stays_der():
    got = configs("--strategy", "der", "--strategy", "derpp", "--beta", "0.3")
    assert got["derpp"].strategy_config().beta == 0.3
    assert not hasattr(got["der"].strategy_config(), "beta")


def test_hp_sets_one_strategy_and_overrides_the_shared_flag():
    got = configs("--strategy", "er", "--strategy", "derpp", "--buffer-size", "64", "--hp", "derpp.buffer_size=32")
    assert got["er"].strategy_config().buffer_size == 64
    assert got["derpp"].strategy_config().buffer_size == 32


def test_a_strategy_gets_its_papers_optimizer_unless_told_otherwise():
    assert configs("--strategy", "online-lora")["online-lora"].optimizer == "adam"
    assert configs("--strategy", "online-lora", "--optimizer", "sgd")["online-lora"].optimizer == "sgd"
    assert configs("--strategy", "naive")["naive"].optimizer == "sgd"


def test_version(capsys):
    import pytest

    from retain import __version__
    from retain.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and __version__ in capsys.readouterr().out


def test_the_python_api_refuses_a_misspelt_hyperparameter():
    import pytest

    from retain.config.run import RunConfig
    from retain.errors import ConfigError

    with pytest.raises(ConfigError, match=r"er has no hyperparameter 'bufer_size' \(did you mean 'buffer_size'\?\)"):
        RunConfig(benchmark="synthetic", strategy="er", params={"bufer_size": 200}).resolve()
    spec = RunConfig(benchmark="synthetic", strategy="er", params={"buffer_size": 200}).resolve()
    assert spec.params["buffer_size"] == 200
    with pytest.raises(ConfigError, match=r"naive has no hyperparameter 'bufer_size' \(did you mean 'buffer_size'"):
        RunConfig(benchmark="synthetic", strategy="naive", params={"bufer_size": 200}).resolve()
    # another strategy's name is a shared setting (one dict for a sweep), as a shared flag is
    shared = RunConfig(benchmark="synthetic", strategy="naive", params={"buffer_size": 200}).resolve()
    assert shared.key == RunConfig(benchmark="synthetic", strategy="naive").resolve().key


def test_dissimilarity_gives_ewc_online_and_the_others_only_their_own_fields():
    from retain.cli.dissimilarity import _configs as dissimilarity_configs

    args = build_parser().parse_args(["dissimilarity", "--fractions", "0.5", "--buffer-size", "40"])
    got = {c.strategy: c for c in dissimilarity_configs(args)}
    assert got["ewc"].params["online"] is True and got["er"].params["buffer_size"] == 40
    assert "buffer_size" not in got["naive"].params and "online" not in got["er"].params
