"""`retain dissimilarity` says what it ran: a data folder it would not read is refused, and the
table and the plot name the benchmark."""

from __future__ import annotations

import matplotlib.figure

from retain.cli.main import main


def test_a_data_dir_for_the_built_in_benchmark_is_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["dissimilarity", "--data-dir", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"--data-dir {tmp_path}" in err and "--benchmark permuted-mnist" in err
    assert not out.exists()


def test_the_table_and_the_plot_name_the_benchmark(tmp_path, capsys, monkeypatch):
    titles = []
    save = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda fig, *a, **k: (titles.append(fig.get_suptitle()), save(fig, *a, **k))[1])
    argv = ["dissimilarity", "--fractions", "0,1", "--tasks", "2", "--strategy", "naive", "--samples", "100",
            "--out", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "permuted-digits, 2 tasks" in " ".join(out.split())
    assert titles and "permuted-digits, 2 tasks" in titles[-1]
