"""The results table as CSV and LaTeX (`retain report --format csv|latex`), the scenario as run in
the set-up table, and methods that record only a final accuracy."""

from __future__ import annotations

import csv
import io
import re

import pytest

from retain.cli.main import main
from retain.metrics.matrix import confidence_interval
from retain.report import render_table, write_report
from retain.report.export import latex_escape
from retain.store import Store
from test_report import fake_run, naive_R


@pytest.fixture
def store(tmp_path) -> Store:
    """naive (3 runs), ewc_lambda=1.0 (2 runs: no interval) and joint trained once (only avg_acc)."""
    s = Store(tmp_path / "r.db")
    for seed in range(3):
        s.save_run(fake_run("naive", seed, naive_R(seed), wall=1.0, peak_mem=100.0 + seed))
        s.save_run(fake_run("joint", seed, [[0.0, 0.0], [0.9, 0.85 + 0.01 * seed]], wall=2.0,
                            metrics={"avg_acc": 0.875 + 0.005 * seed}))
    for seed in range(2):
        s.save_run(fake_run("ewc", seed, [[0.9, 0.1], [0.7, 0.9]], wall=1.5, params={"ewc_lambda": 1.0}))
        s.save_run(fake_run("ewc", seed, [[0.9, 0.1], [0.6, 0.9]], wall=1.5, params={"ewc_lambda": 10.0}))
    return s


def test_csv_parses_back_to_the_measured_numbers(store):
    rows = list(csv.DictReader(io.StringIO(render_table(store, "csv"))))
    by = {r["method"]: r for r in rows}
    assert set(by) == {"naive", "joint", "ewc (ewc_lambda=1.0)", "ewc (ewc_lambda=10.0)"}
    mean, half = confidence_interval([40.0, 50.0, 60.0])  # naive's forgetting, in %
    assert float(by["naive"]["forgetting_pct_mean"]) == pytest.approx(mean, abs=1e-3)
    assert float(by["naive"]["forgetting_pct_ci95"]) == pytest.approx(half, abs=1e-3)
    assert float(by["naive"]["peak_mem_mb_per_run_mean"]) == pytest.approx(101.0)
    ewc = by["ewc (ewc_lambda=1.0)"]
    assert ewc["runs"] == "2" and ewc["avg_acc_pct_ci95"] == ""  # under 3 runs: no interval
    assert float(ewc["forgetting_pct_mean"]) == pytest.approx(20.0)
    # forgetting 0.2 against naive's mean 0.5: a 60 % reduction
    assert float(ewc["forgetting_reduction_pct_mean"]) == pytest.approx(60.0)
    joint = by["joint"]
    assert float(joint["avg_acc_pct_mean"]) == pytest.approx(88.0)
    assert joint["forgetting_pct_mean"] == joint["bwt_pct_mean"] == joint["forgetting_reduction_pct_mean"] == ""
    assert by["naive"]["forgetting_reduction_pct_mean"] == ""  # the reference itself


def test_latex_has_one_row_a_method_and_escapes_labels(store):
    tex = render_table(store, "latex", full_latex=True)
    body = re.search(r"\\midrule\n(.*?)\n\\bottomrule", tex, re.S).group(1).splitlines()
    assert len(body) == 4 and all(line.endswith(r"\\") for line in body)
    assert "\\begin{tabular}{l" + "r" * 11 + "}" in tex
    header = re.search(r"\\toprule\n(.*?) \\\\", tex).group(1).split(" & ")
    assert all(len(line[:-2].split(" & ")) == len(header) for line in body)
    mean, half = confidence_interval([40.0, 50.0, 60.0])
    assert f"${mean:.1f} \\pm {half:.1f}$" in body[0]
    assert body[1].startswith(r"ewc (ewc\_lambda=1.0) & 2 & $") and "($n{=}2$)" in body[1]
    assert [line.split(" & ")[0] for line in body] == ["naive", r"ewc (ewc\_lambda=1.0)", r"ewc (ewc\_lambda=10.0)",
                                                        "joint"]  # naive first, the upper bound last
    assert latex_escape("a_b & 5% #1 {x}") == r"a\_b \& 5\% \#1 \{x\}"


def test_joint_shows_dashes_and_is_left_out_of_comparisons(store, tmp_path):
    md = write_report(store, tmp_path / "rep")["markdown"].read_text()
    joint = next(line for line in md.splitlines() if line.startswith("| joint | 3 |"))
    cells = [c.strip() for c in joint.strip("|").split("|")]
    assert cells[2].startswith("88.0 ± ") and cells[3:8] == ["—"] * 5  # forgetting, BWT, FWT, learning, reduction
    assert re.search(r"\| joint \| — \| 2\.00x \|", md)
    assert "avg acc % (mean ± 95% CI)" in md and "peak memory MB (per run; mean ± 95% CI)" in md
    ewc = next(line for line in md.splitlines() if line.startswith("| ewc (ewc_lambda=1.0) | 2 |"))
    assert "(n=2)" in ewc and "±" not in ewc


def test_setup_table_names_the_scenario_used(tmp_path, monkeypatch):
    from retain.benchmarks import BENCHMARKS
    from retain.report import data

    s = Store(tmp_path / "s.db")
    s.save_run(fake_run("naive", 0, naive_R(0), 1.0))  # no scenario configured: synthetic's default
    s.save_run(fake_run("naive", 0, naive_R(0), 1.0, scenario="task-il") | {"run_key": "task-il"})
    s.save_run(fake_run("naive", 0, naive_R(0), 1.0, benchmark="permuted-mnist"))
    md = write_report(s, tmp_path / "a", benchmark="synthetic")["markdown"].read_text()
    assert "| naive (scenario=None) | class-il |" in md and "| naive (scenario=task-il) | task-il |" in md
    assert "benchmark default" not in md
    # A benchmark with data files is not built for this (it may be gigabytes); its declared default is used
    data._default_scenario.cache_clear()
    monkeypatch.setattr(BENCHMARKS.get("permuted-mnist"), "default_scenario", "domain-il", raising=False)
    md = write_report(s, tmp_path / "b", benchmark="permuted-mnist")["markdown"].read_text()
    assert "| naive | domain-il |" in md
    data._default_scenario.cache_clear()


def test_the_default_latex_table_fits_a_paper_column_and_the_full_one_is_on_request(store, tmp_path, capsys):
    tex = render_table(store, "latex")
    assert "\\begin{tabular}{lrr}" in tex and "\\small" in tex and "\\begin{table}[t]" in tex
    header = re.search(r"\\toprule\n(.*?) \\\\", tex).group(1).split(" & ")
    assert header == ["Method", "avg acc \\%", "forgetting \\%"]
    out = tmp_path / "t"
    assert main(["report", str(store.path), "--out", str(out), "--format", "latex", "--latex-full"]) == 0
    full = (out / "results.tex").read_text()
    assert "\\begin{table*}[t]" in full and "Trainable params" in full and "\\small" not in full


def test_report_command_formats(store, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["report", str(store.path), "--out", str(out), "--format", "csv", "--format", "latex"]) == 0
    assert {p.name for p in out.iterdir()} == {"results.csv", "results.tex"}  # no report, no plots
    assert next(csv.reader(open(out / "results.csv")))[:4] == ["benchmark", "method", "strategy", "runs"]
    capsys.readouterr()
    assert main(["report", str(store.path), "--format", "latex", "--out", "-"]) == 0
    assert "\\begin{tabular}" in capsys.readouterr().out
    assert main(["report", str(store.path), "--format", "markdown", "--out", "-"]) == 2
    assert "exactly one of --format csv" in capsys.readouterr().err
