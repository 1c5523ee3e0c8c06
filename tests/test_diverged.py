"""Diverging training (a loss that becomes NaN/inf) stops the run: it is recorded failed with a
"diverged" event, the CLI prints the reason and exits 1, and no NaN reaches a table or summary."""

from __future__ import annotations

import json
import math

import pytest

from retain.cli.main import main
from retain.config.run import RunConfig
from retain.errors import DivergedError
from retain.execution.execute import execute
from retain.store import Store
from retain.training.loop import run_experiment


def test_the_loop_raises_with_the_task_and_the_lr():
    with pytest.raises(DivergedError, match=r"non-finite in task 1, epoch 1 with lr 1000.0") as info:
        run_experiment(RunConfig(benchmark="synthetic", lr=1e3))
    assert info.value.task == 0


def test_the_record_is_failed_with_a_diverged_event():
    rec = execute(RunConfig(benchmark="synthetic", lr=1e3))
    assert rec["status"] == "failed" and rec["error"].startswith("DivergedError: loss became non-finite")
    assert [(e["kind"], e["task"]) for e in rec["events"]] == [("diverged", 0)]


def test_cli_exits_1_with_the_message_and_stores_the_failure(tmp_path, capsys):
    argv = ["run", "--benchmark", "synthetic", "--strategy", "naive", "--seeds", "1", "--lr", "1e3",
            "--out", str(tmp_path), "--quiet", "--no-report"]
    assert main(argv) == 1
    cap = capsys.readouterr()
    err = " ".join(cap.err.split())  # the console wraps long lines
    assert "naive: 1 of 1 runs failed (seed 0: DivergedError: loss became non-finite" in err and "lower --lr" in err
    assert "nan" not in (cap.out + cap.err).lower()  # no table full of NaN
    store = Store(tmp_path / "retain.db")
    assert store.runs() == []  # nothing finished
    [failed] = store.runs(status="failed")
    assert failed.acc_matrix == [] and not failed.metrics
    assert [e["kind"] for e in store.events(failed["id"])] == ["diverged"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == [] and not any(isinstance(v, float) and math.isnan(v) for v in summary)
    # Started again with a sane lr, the same study finishes: a failed run is not "done".
    argv[argv.index("1e3")] = "0.1"
    assert main(argv) == 0
    assert len(Store(tmp_path / "retain.db").runs()) == 1
