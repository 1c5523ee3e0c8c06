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


def test_the_report_beside_a_store_covers_the_store_and_keeps_no_stale_plot(tmp_path, capsys):
    out = tmp_path / "results"
    assert main(RUN + ["--benchmark", "synthetic", "--out", str(out), "--no-report"]) == 0
    assert main(RUN + ["--benchmark", "split-digits", "--tasks", "2", "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "Benchmark: synthetic" in report and "Benchmark: split-digits" in report  # the first study kept
    plots = {p.name for p in (out / "plots").iterdir()}
    assert any(n.startswith("synthetic-") for n in plots) and any(n.startswith("split-digits-") for n in plots)
    (out / "plots" / "my-notes.png").write_bytes(b"not retain's")
    capsys.readouterr()
    assert main(["report", str(out / "retain.db"), "--benchmark", "split-digits"]) == 0
    plots = {p.name for p in (out / "plots").iterdir()}
    assert not any(n.startswith("synthetic-") for n in plots), plots  # no plot the report does not show
    assert "my-notes.png" in plots and any(n.startswith("split-digits-") for n in plots)
    assert "Benchmark: synthetic" not in (out / "report.md").read_text()


def test_a_report_away_from_its_store_covers_the_study_alone(tmp_path, capsys):
    store = tmp_path / "shared.db"
    assert main(RUN + ["--benchmark", "synthetic", "--store", str(store), "--out", str(tmp_path / "a"),
                       "--no-report"]) == 0
    assert main(RUN + ["--benchmark", "split-digits", "--tasks", "2", "--store", str(store),
                       "--out", str(tmp_path / "b")]) == 0
    report = (tmp_path / "b" / "report.md").read_text()
    assert "Benchmark: split-digits" in report and "Benchmark: synthetic" not in report


def test_a_rerun_shows_the_same_warnings_as_the_run_that_stored_them(tmp_path, capsys):
    argv = RUN + ["--benchmark", "permuted-digits", "--tasks", "3", "--strategy", "er", "--no-report",
                  "--out", str(tmp_path), "--warnings", "all"]

    def warnings() -> list[str]:
        assert main(argv) == 0
        lines = capsys.readouterr().err.splitlines()
        return [ln for ln in lines if ln.startswith(("note:", "warning:", "failed:"))]

    first = warnings()
    assert any("differs from task" in ln for ln in first)  # a stored probe event (task dissimilarity)
    assert warnings() == first
