"""Peak memory is per run: a run after a big allocation in the same process does not report the
big allocation's peak (Linux: VmHWM reset at run start); elsewhere the fallback says what it is."""

from __future__ import annotations

import resource
import sys

import pytest
import torch

from retain.config.run import RunConfig
from retain.training import peak_memory
from retain.training.loop import run_experiment
from retain.training.peak_memory import PROCESS_PEAK, RUN_PEAK, PeakMemory


def big_allocation(mib: int = 300) -> None:
    block = torch.ones(mib * 2**20 // 4)  # float32, written, so every page is resident
    block += 1
    del block


def test_a_small_run_after_a_big_allocation_reports_a_smaller_peak():
    big_allocation()
    process_peak = peak_memory._maxrss_mb()
    result = run_experiment(RunConfig(benchmark="synthetic", strategy="naive"))
    if sys.platform.startswith("linux"):
        assert result.peak_mem_source == RUN_PEAK
        assert result.peak_mem_mb < process_peak - 200, (result.peak_mem_mb, process_peak)
    else:  # no per-run peak there: the figure is the process's, and says so
        assert result.peak_mem_source == PROCESS_PEAK and result.peak_mem_mb >= process_peak
    assert result.peak_mem_mb > 0


def test_without_clear_refs_the_process_peak_is_reported_and_labelled(monkeypatch, tmp_path):
    monkeypatch.setattr(peak_memory, "_CLEAR_REFS", tmp_path / "missing" / "clear_refs")
    memory = PeakMemory()
    memory.start()
    big_allocation(64)
    assert memory.source == PROCESS_PEAK
    assert memory.peak_mb() == peak_memory._maxrss_mb() >= 64
    if sys.platform.startswith("linux"):  # KiB there
        assert memory.peak_mb() == resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM exists on Linux only")
def test_a_run_peak_covers_what_the_run_allocates():
    memory = PeakMemory()
    memory.start()
    before = memory.peak_mb()
    big_allocation(200)
    assert memory.source == RUN_PEAK and memory.peak_mb() >= before + 190
