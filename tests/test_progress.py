"""What a study shows while it runs (retain.execution.reporters): steps within a task with an
ETA, in this process, in an ensemble and in pool workers; plain lines when the output is not a
terminal; a line while data load; the planned steps and an ETA after a long run's first task."""

from __future__ import annotations

import io
import re
import subprocess
from types import SimpleNamespace

import pytest

from processes import env, retain
from retain.execution.reporters import Lines, clock_text, make_bars

#: A task of 2,500 steps (2 classes x 20,000 samples, batch 16): long enough for reports within it.
LONG_TASK = ["--benchmark", "synthetic", "--strategy", "naive", "--tasks", "2", "--epochs", "1",
             "--benchmark-option", "per_class=20000", "--no-report", "--warnings", "none"]


@pytest.mark.parametrize("how, label", [
    (["--seeds", "1", "--workers", "1"], "naive seed 0 order 0"),  # in this process
    (["--seeds", "2", "--workers", "1"], "naive seed 0,1 order 0"),  # one ensemble of two
    (["--seeds", "2", "--workers", "2", "--no-batch-seeds"], "naive seed 1 order 0"),  # a pool worker
])
def test_plain_lines_show_steps_within_a_task_with_an_eta(tmp_path, how, label):
    """Output to a pipe (not a terminal): plain lines, the first saying the data load, then the
    steps of task 1 before it ends, with an ETA: in-process, an ensemble, a pool worker."""
    r = subprocess.run(retain("run", *LONG_TASK, *how, "--out", str(tmp_path)), capture_output=True, text=True,
                       env=env() | {"RETAIN_PROGRESS_SECONDS": "0"}, timeout=600)
    assert r.returncode == 0, r.stderr
    mine = [line for line in r.stderr.splitlines() if f"] {label}: " in line]
    assert mine and mine[0].endswith(f"{label}: loading data"), r.stderr
    within = [int(m.group(1).replace(",", "")) for line in mine
              if (m := re.search(r": task 1/2, step ([\d,]+)/5,000 \(\d+ %\), ETA \d+:\d\d:\d\d$", line))]
    assert any(0 < n < 2500 for n in within), mine  # a report inside the task, not only at its end
    assert re.search(r"\] study: \d/\d runs finished", r.stderr)


def test_the_plan_and_its_eta_come_after_the_first_task_of_a_long_run():
    now = [0.0]
    out = io.StringIO()
    lines = Lines(out=out, every=1e9, runs=3, workers=1, clock=lambda: now[0])
    job = SimpleNamespace(strategy="naive", seed=0, order=0, key="k0")
    lines.step(job, 0, 0, "loading data")
    now[0] = 5.0
    lines.step(job, 0, 10_000 * 80_000, "task 1/10000")
    now[0] = 45.0
    lines.step(job, 80_000, 10_000 * 80_000, "task 2/10000")
    text = out.getvalue()
    assert ("naive seed 0 order 0: planned 10000 tasks, 800,000,000 steps; the first task took 0:00:40 "
            "(80,000 steps), so this run ends in about 4 days, 15:06:00 and the study's 3 runs left") in text
    assert "step 80,000/800,000,000 (0 %), ETA 4 days, 15:06:00" in text

    short = io.StringIO()  # a run of a minute: no plan line
    quick = Lines(out=short, every=1e9, runs=1, workers=1, clock=lambda: now[0])
    quick.step(job, 0, 100, "task 1/2")
    now[0] += 30.0
    quick.step(job, 50, 100, "task 2/2")
    assert "planned" not in short.getvalue()


def test_a_long_study_prints_its_plan_after_the_first_task(tmp_path):
    """`--tasks 1000 --epochs 300` on synthetic: the line with the planned steps and an ETA
    comes after the first task; the study is stopped there."""
    proc = subprocess.Popen(retain("run", "--benchmark", "synthetic", "--strategy", "naive", "--seeds", "1",
                                   "--tasks", "1000", "--epochs", "300", "--workers", "1", "--no-report",
                                   "--out", str(tmp_path)),
                            env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if "planned" in line:
                break
        assert re.search(r"naive seed 0 order 0: planned 1000 tasks, 2,400,000 steps; the first task took "
                         r"\d+:\d\d:\d\d \(2,400 steps\), so this run ends in about ", seen[-1]), seen
        assert not any("task 2/1000" in line for line in seen[:-1])  # after the first task, not before
    finally:
        proc.kill()
        proc.wait()


def test_bars_in_a_terminal_have_an_eta_column():
    from rich.progress import TimeRemainingColumn

    assert any(isinstance(c, TimeRemainingColumn) for c in make_bars().columns)
    assert clock_text(59.6) == "0:01:00" and clock_text(86_400 * 2 + 61) == "2 days, 0:01:01"


def test_a_line_while_the_data_load_before_the_runs(tmp_path, capsys, monkeypatch):
    """The study's data are read once before any run (bad data fail early): when that takes a
    while, a line says so; when it is quick, nothing is printed."""
    import time

    import retain.benchmarks
    from retain.cli.main import main

    real = retain.benchmarks.make_benchmark
    monkeypatch.setattr(retain.benchmarks, "make_benchmark", lambda *a, **k: (time.sleep(1.5), real(*a, **k))[1])
    argv = ["run", "--benchmark", "synthetic", "--strategy", "naive", "--seeds", "1", "--tasks", "2", "--quiet",
            "--no-report", "--warnings", "none"]
    assert main([*argv, "--out", str(tmp_path / "slow")]) == 0
    assert "loading the data of synthetic (checked before any run starts)" in capsys.readouterr().err
    monkeypatch.setattr(retain.benchmarks, "make_benchmark", real)
    assert main([*argv, "--out", str(tmp_path / "quick")]) == 0
    assert "loading the data" not in capsys.readouterr().err
