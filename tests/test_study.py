"""Study files: expansion into runs, and refusal of bad input with file, key and line."""

from __future__ import annotations

import pytest

from retain.config.study_file import load_study, parse_study
from retain.config.toml_lines import key_lines
from retain.errors import ConfigError

BASE = """\
[study]
name = "t"
seeds = 2
orders = [0, 3]

[settings]
tasks = 2
hidden = [16]
lr = [0.05, 0.1]

[benchmarks.synthetic]
epochs = 1

[strategies.naive]

[strategies.joint]
[strategies.joint.settings]
lr = 0.2
"""


def parse(text: str):
    return parse_study(text, file="s.toml", check_data=False)


def test_grid_expands_seeds_orders_and_settings():
    study = parse(BASE)
    naive = [c for c in study.configs if c.strategy == "naive"]
    joint = [c for c in study.configs if c.strategy == "joint"]
    assert len(naive) == 2 * 2 * 2 and len(joint) == 2 * 2  # lr grid x orders x seeds; joint overrides lr
    assert {(c.lr, c.order, c.seed) for c in naive} == {(lr, o, s) for lr in (0.05, 0.1) for o in (0, 3)
                                                         for s in (0, 1)}
    assert {c.lr for c in joint} == {0.2}
    assert all(c.hidden == (16,) and c.epochs == 1 and c.tasks == 2 for c in study.configs)
    assert len({c.key for c in study.configs}) == len(study.configs)
    assert study.name == "t" and study.command == "retain run s.toml"


def test_hyperparameter_grid_and_list_valued_settings():
    text = BASE.replace("[strategies.joint]\n[strategies.joint.settings]\nlr = 0.2\n", "") + \
        '[strategies.ewc]\newc_lambda = [1.0, 10.0]\nonline = true\n'
    text = text.replace("hidden = [16]", "hidden = [[16], [8, 8]]").replace("lr = [0.05, 0.1]", "lr = 0.1")
    ewc = [c for c in parse(text).configs if c.strategy == "ewc"]
    assert {(c.params["ewc_lambda"], c.hidden) for c in ewc} == {(lam, h) for lam in (1.0, 10.0)
                                                                  for h in ((16,), (8, 8))}
    assert all(c.params["online"] is True for c in ewc)


@pytest.mark.parametrize(("old", "new", "line", "key", "what"), [
    ("epochs = 1", 'epochs = "x"', 12, "benchmarks.synthetic.epochs", "must be int"),
    ("epochs = 1", "epoch = 1", 12, "benchmarks.synthetic.epoch", "unknown setting"),
    ("lr = 0.2", "lr = -1.0", 18, "strategies.joint.settings.lr", "lr must be a finite number > 0"),
    ("seeds = 2", "seeds = 0", 3, "study.seeds", "must be a count from 1"),
    ("orders = [0, 3]", "orders = [0, 0]", 4, "study.orders", "repeated"),
    ("[strategies.naive]", "[strategies.naiv]", 14, "strategies.naiv", "unknown strategy"),
    ("[benchmarks.synthetic]", "[benchmarks.nope]", 11, "benchmarks.nope", "unknown benchmark"),
    ('name = "t"', 'nme = "t"', 2, "study.nme", "unknown key"),
    ("[settings]", "[setings]", 6, "setings", "unknown section"),
    ("[strategies.naive]", "[strategies.naive]\nfoo = 1", 15, "strategies.naive.foo", "unknown hyperparameter"),
    ("lr = [0.05, 0.1]", "lr = []", 9, "settings.lr", "empty list"),
    ("hidden = [16]", "hidden = [16, -1]", 8, "settings.hidden", "positive integers"),
])
def test_bad_values_name_file_key_and_line(old, new, line, key, what):
    assert old in BASE
    with pytest.raises(ConfigError) as err:
        parse(BASE.replace(old, new, 1))
    assert f"s.toml:{line}: {key}" in str(err.value) and what in str(err.value)


def test_bad_hyperparameter_value_points_at_its_line():
    text = BASE + "[strategies.ewc]\newc_lambda = [1.0, -5.0]\n"
    with pytest.raises(ConfigError, match=r"s.toml:20: strategies.ewc.ewc_lambda: ewc: ewc-lambda must be >= 0"):
        parse(text)


def test_invalid_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"s.toml:2: not valid TOML: .*line 2"):
        parse("[study]\nname = \n")
    with pytest.raises(ConfigError, match="cannot read the study file"):
        load_study(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match=r"needs at least one \[strategies.NAME\]"):
        parse("[benchmarks.synthetic]\n")


def test_bad_benchmark_option_is_refused_before_running(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(BASE.replace("epochs = 1", "epochs = 1\n[benchmarks.synthetic.options]\nbogus = 3"))
    with pytest.raises(ConfigError, match=r"s.toml:14: benchmarks.synthetic.options.bogus: unknown option of "
                                          r"benchmark 'synthetic'; known: .*per_class"):
        load_study(path)


def test_key_lines_handles_dotted_quoted_and_multiline_values():
    text = ('a = 1\n[t."x.y"]\nb.c = 2\nm = [\n  1,\n  2,\n]\nd = """\nq = 1\n"""\n'
            'e = { f = 1 }  # comment\n[[arr]]\ng = 3\n')
    lines = key_lines(text)
    assert lines[("a",)] == 1 and lines[("t", "x.y")] == 2 and lines[("t", "x.y", "b", "c")] == 3
    assert lines[("t", "x.y", "m")] == 4 and lines[("t", "x.y", "d")] == 8 and ("t", "x.y", "q") not in lines
    assert lines[("t", "x.y", "e")] == 11 and lines[("arr", "g")] == 13


def test_example_study_is_valid():
    from pathlib import Path

    study = load_study(Path(__file__).resolve().parents[1] / "examples" / "compare.toml", check_data=False)
    assert {c.strategy for c in study.configs} == {"naive", "ewc", "er", "derpp"}
    assert len(study.configs) == 4 * 3 * 2 and {c.benchmark for c in study.configs} == {"permuted-digits"}


def test_buffer_larger_than_the_data_is_refused_at_its_line(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(BASE + "[strategies.er]\nbuffer_size = 100000\n")
    with pytest.raises(ConfigError, match=r"s.toml:20: strategies.er.buffer_size: er: buffer-size 100000 is larger"):
        load_study(path)


@pytest.mark.parametrize("text", ["a = " + "[" * 3000 + "]" * 3000 + "\n",
                                  "[study]\nseeds = " + "[" * 100 + "]" * 100 + "\n",
                                  "[settings]\n" + "x = " + "{ a = " * 40 + "1" + " }" * 40 + "\n"])
def test_deeply_nested_values_are_one_line_not_a_recursion_error(text):
    from retain.config.study_file import parse_study

    with pytest.raises(ConfigError, match=r"^deep\.toml: values nested (too deeply|more than 32 levels)"):
        parse_study(text, file="deep.toml")
