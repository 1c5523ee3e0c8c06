"""Threads follow the cores the concurrent runs leave free, each record keeps its count, and the
same count gives the same numbers."""

from __future__ import annotations

import torch

from retain.config.run import RunConfig
from retain.execution.executors import InProcess, ProcessPool, make_executor, run_study, threads_per_run
from retain.execution.progress import auto_workers
from retain.store import Store


def _cfg(seed: int = 0) -> RunConfig:
    return RunConfig(benchmark="synthetic", strategy="er", seed=seed, epochs=1, hidden=(32,),
                     params={"buffer_size": 32}).validate()


def test_threads_share_the_cores_between_concurrent_runs():
    assert threads_per_run(1, cores=8) == 8
    assert threads_per_run(2, cores=8) == 4
    assert threads_per_run(3, cores=8) == 2
    assert threads_per_run(16, cores=8) == 1
    assert make_executor(workers=1, threads=3).threads == 3
    assert make_executor(workers=2).threads == threads_per_run(2)


def test_auto_workers_never_exceeds_the_runs_to_do(monkeypatch):
    monkeypatch.setattr("retain.execution.progress.available_cores", lambda: 4)
    assert auto_workers(1) == 1  # one run: in this process, on every core
    assert auto_workers(3) == 3
    assert auto_workers(30) == 4


def test_same_thread_count_gives_bit_identical_runs_and_records_it(tmp_path):
    before = torch.get_num_threads()
    a = run_study([_cfg()], Store(tmp_path / "a.db"), InProcess(threads=2)).records[0]
    b = run_study([_cfg()], Store(tmp_path / "b.db"), InProcess(threads=2)).records[0]
    assert a["acc_matrix"] == b["acc_matrix"] and a["losses"] == b["losses"]
    assert a["extra"]["threads"] == 2
    assert torch.get_num_threads() == before  # the caller's setting is given back


def test_pool_workers_run_with_the_threads_they_were_given(tmp_path):
    recs = run_study([_cfg(0), _cfg(1)], Store(tmp_path / "p.db"), ProcessPool(2, threads=1)).records
    assert [r["extra"]["threads"] for r in recs] == [1, 1]


def test_the_default_leaves_out_the_cores_other_work_keeps_busy():
    from retain.execution.threads import default_threads

    idle = default_threads(1, cores=2, busy=0.1)
    assert idle[0] == 2 and "about 0.1 of them busy" in idle[1]
    loaded = default_threads(1, cores=2, busy=3.5)  # load 3-4 on 2 cores: one thread, and why
    assert loaded[0] == 1 and "not 2" in loaded[1] and "about 3.5 of them busy with other work" in loaded[1]
    assert default_threads(1, cores=8, busy=5.0)[0] == 3  # three cores idle
    assert default_threads(2, cores=8, busy=2.0)[0] == 3  # six idle, shared by two runs
    assert default_threads(16, cores=8, busy=0.0)[0] == 1
    unknown = default_threads(1, cores=4, measure=lambda: None)
    assert unknown[0] == 4 and "unknown" in unknown[1]


def test_the_cores_use_is_measured_from_the_machine():
    from retain.execution.threads import busy_cores

    busy = busy_cores(0.05)
    assert busy is not None and 0.0 <= busy <= (__import__("os").cpu_count() or 1)


def test_each_record_says_why_its_thread_count_was_chosen(tmp_path, monkeypatch):
    from retain.cli.main import main
    from retain.execution import threads

    monkeypatch.setattr(threads, "busy_cores", lambda sample=0.25: 7.5)  # a machine other work keeps busy
    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    argv = ["run", "--benchmark", "synthetic", "--strategy", "naive", "--seeds", "1", "--tasks", "2", "--workers", "1",
            "--quiet", "--no-report", "--warnings", "none"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    (rec,) = Store(tmp_path / "a" / "retain.db", readonly=True).runs()
    assert rec.extra["threads"] == 1 and rec.extra["threads_choice"].startswith("8 cores for 1 run(s) at once, about "
                                                                              "7.5 of them busy")
    assert main([*argv, "--threads", "2", "--out", str(tmp_path / "b")]) == 0
    (rec,) = Store(tmp_path / "b" / "retain.db", readonly=True).runs()
    assert rec.extra["threads"] == 2 and rec.extra["threads_choice"] == "--threads 2 (given)"
