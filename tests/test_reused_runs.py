"""What `retain run` says and writes when runs come from the store: loggers that saw nothing say
so, and the report beside a store covers the store, with no plot left that it does not show."""

from __future__ import annotations

from retain.cli.main import main

RUN = ["run", "--strategy", "naive", "--seeds", "1", "--quiet"]


def _text(capsys) -> str:
    got = capsys.readouterr()
    return " ".join((got.out + got.err).split())


def test_a_logger_that_saw_no_run_says_so_in_one_line(tmp_path, capsys):
    argv = RUN + ["--benchmark", "synthetic", "--no-report", "--out", str(tmp_path), "--logger", "tensorboard"]
    assert main(argv) == 0
    assert "reused" not in _text(capsys)
    assert main(argv) == 0
    text = _text(capsys)
    assert "note: every run was reused from" in text and "--logger tensorboard logged nothing" in text
    assert "a new --out (or --store) trains and logs them again" in text
    assert main(argv[:-2]) == 0 and "reused from" not in _text(capsys)  # no logger: nothing to say
