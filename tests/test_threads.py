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
