"""What the command line says when a user mistypes or asks for help: the closest name, the
subcommand's own --help, and only the hyperparameter flags of the strategies asked about."""

from __future__ import annotations

from pathlib import Path

import pytest

from retain.cli.main import main


def _error(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    return err


def test_a_misspelt_strategy_name_suggests_the_closest(capsys):
    assert main(["run", "--strategy", "dpp", "--benchmark", "synthetic"]) == 2
    err = capsys.readouterr().err
    assert "unknown strategy 'dpp' (did you mean derpp?)" in err


def test_an_unknown_flag_points_to_the_subcommands_help_and_the_closest_flag(capsys):
    err = _error(capsys, "run", "--buffer_size", "200")
    assert "unrecognized arguments: --buffer_size (did you mean --buffer-size?)" in err
    assert err.endswith("(see `retain run --help`)")


def test_an_invalid_choice_suggests_the_closest(capsys):
    assert "(did you mean list?)" in _error(capsys, "lst")
    assert "(did you mean class-il?)" in _error(capsys, "run", "--scenario", "clas-il")


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    assert exc.value.code == 0
    return capsys.readouterr().out


def test_run_help_with_a_strategy_lists_only_its_hyperparameters(capsys):
    full = _help(capsys, "run", "--help")
    assert "--beta" in full and "--ewc-lambda" in full
    derpp = _help(capsys, "run", "--strategy", "derpp", "--help")
    assert "--beta" in derpp and "--buffer-size" in derpp and "--alpha" in derpp
    assert "--ewc-lambda" not in derpp and "--lwf-alpha" not in derpp and "--seeds" in derpp
    assert len(derpp.splitlines()) < len(full.splitlines()) - 40
    composite = _help(capsys, "run", "--strategy", "er", "--plus", "ewc", "-h")
    assert "--ewc-lambda" in composite and "--buffer-size" in composite and "--beta" not in composite


def test_dissimilarity_help_lists_the_hyperparameters_of_the_strategies_it_runs(capsys):
    text = _help(capsys, "dissimilarity", "--help")
    assert "--ewc-lambda" in text and "--buffer-size" in text and "--beta" not in text
    assert "--beta" in _help(capsys, "dissimilarity", "--strategy", "derpp", "--help")


def test_retain_list_fits_the_terminal_and_renders_docstring_markup(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    plugin = Path(__file__).resolve().parents[1] / "examples" / "plugins" / "my_er.py"
    assert main(["list", "--plugin", str(plugin)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines if "[file " not in line) <= 80
    (derpp,) = [i for i, line in enumerate(lines) if line.split()[:1] == ["*derpp"]]
    assert "``" not in lines[derpp] + lines[derpp + 1] and "(beta" in " ".join(lines[derpp: derpp + 2])
    (mine,) = [line for line in lines if line.split()[:1] == ["my-er"]]
    assert mine.rstrip().endswith("my_er.py]")  # a plugin's origin stays on its name's line


def test_presets_hp_names_and_study_files_suggest_the_closest_name(capsys, tmp_path):
    assert main(["run", "--preset", "der-pmnst", "--strategy", "derpp"]) == 2
    assert "unknown preset 'der-pmnst' (did you mean der-pmnist?)" in capsys.readouterr().err
    assert main(["run", "--benchmark", "synthetic", "--strategy", "derpp", "--hp", "derpp.bta=0.5"]) == 2
    assert "has no hyperparameter 'bta' (did you mean 'beta'?)" in capsys.readouterr().err
    study = tmp_path / "s.toml"
    study.write_text("[study]\nseeds = 1\n\n[benchmarks.synthetic]\nepoch = 2\n\n[strategies.er]\nbufer_size = 8\n")
    assert main(["run", str(study), "--out", str(tmp_path / "o")]) == 2
    assert "unknown setting (did you mean epochs?)" in capsys.readouterr().err
    study.write_text("[study]\nseeds = 1\n\n[benchmarks.synthetic]\n\n[strategies.er]\nbufer_size = 8\n")
    assert main(["run", str(study), "--out", str(tmp_path / "o")]) == 2
    assert "(did you mean buffer_size?)" in capsys.readouterr().err
