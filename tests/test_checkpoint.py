"""Checkpoints at task boundaries: a run stopped during task k resumes from the last boundary and
ends with the same accuracy matrix, bit for bit; a tampered checkpoint is refused, never run."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from retain.config.run import RunConfig
from retain.errors import DataError
from retain.execution.execute import execute
from retain.store import Store
from retain.strategies import STRATEGIES
from retain.training.checkpoint import Checkpointer, path_for, save
from retain.training.loop import run_experiment


class Stop(Exception):
    """Stands in for a crash during a task."""


def _stop_at(task: int):
    def hook(ctx):
        if ctx.task == task:
            raise Stop
    return hook


# Small values for hyperparameters some strategies have (the buffer must fit the tiny data).
TINY = {"buffer_size": 32, "replay_batch_size": 16}


def _cfg(strategy: str = "naive", **kw) -> RunConfig:
    fields = {f.name for f, _ in STRATEGIES.get(strategy).Config.fields()}  # the API refuses a field a strategy lacks
    params = {k: v for k, v in TINY.items() if k in fields}
    return RunConfig(benchmark="synthetic", strategy=strategy, tasks=3, seed=0, params=params, **kw)


@pytest.mark.parametrize("strategy", STRATEGIES.names())
def test_stopped_run_resumes_to_the_identical_matrix(tmp_path, strategy):
    reference = run_experiment(_cfg(strategy))
    with pytest.raises(Stop):  # stops during task 2's bookkeeping: the last boundary is task 1
        run_experiment(_cfg(strategy), checkpoint_dir=tmp_path, after_task=[_stop_at(2)])
    ckpt = path_for(tmp_path, reference.key)
    assert ckpt.is_file()
    torch.manual_seed(12345)  # the restart must not depend on the state the process happens to be in
    np.random.seed(9)
    resumed = run_experiment(_cfg(strategy), checkpoint_dir=tmp_path)
    assert resumed.acc_matrix == reference.acc_matrix
    assert resumed.baseline == reference.baseline and resumed.losses == reference.losses
    assert [e["kind"] for e in resumed.events if e["kind"] == "resumed"] == ["resumed"]
    assert not ckpt.exists()  # a finished run lives in the store, not in its checkpoint


def test_resume_after_the_first_task_and_twice(tmp_path):
    cfg = lambda: RunConfig(benchmark="synthetic", tasks=4, seed=2)  # noqa: E731
    reference = run_experiment(cfg())
    for stop in (1, 3):
        with pytest.raises(Stop):
            run_experiment(cfg(), checkpoint_dir=tmp_path, after_task=[_stop_at(stop)])
    resumed = run_experiment(cfg(), checkpoint_dir=tmp_path)
    assert resumed.acc_matrix == reference.acc_matrix
    assert sum(e["kind"] == "resumed" for e in resumed.events) == 2


_KILL_SCRIPT = """
import os, signal, sys, torch
torch.set_num_threads(1)
from retain.diagnostics.probes import make_probe_hooks
from retain.execution.execute import execute
from retain.config.run import RunConfig
def hook(ctx):
    if ctx.task == 2:
        os.kill(os.getpid(), signal.SIGKILL)
execute(RunConfig(benchmark="synthetic", strategy="naive", tasks=4, seed=0), checkpoint_dir=sys.argv[1],
        after_task=make_probe_hooks() + [hook])  # the hooks the CLI uses, and the kill
"""


@pytest.mark.slow
def test_sigkill_during_a_task_then_cli_resume(tmp_path):
    """A real SIGKILL in a separate process, then `retain run --checkpoint-dir` finishes the run."""
    ckdir, out = tmp_path / "ck", tmp_path / "out"
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    killed = subprocess.run([sys.executable, "-c", _KILL_SCRIPT, str(ckdir)], env=env, capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    assert len(list(ckdir.glob("*.pt"))) == 1
    cli = [sys.executable, "-m", "retain", "run", "--benchmark", "synthetic", "--strategy", "naive", "--tasks", "4",
           "--seeds", "1", "--out", str(out), "--checkpoint-dir", str(ckdir), "--quiet"]
    done = subprocess.run(cli, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    [run] = Store(out / "retain.db").runs()
    reference = run_experiment(RunConfig(benchmark="synthetic", strategy="naive", tasks=4, seed=0))
    assert run["acc_matrix"] == reference.acc_matrix
    # The probes (after-task hooks with state of their own) resume too: same values as a run
    # never interrupted, except the timings.
    expected: dict[str, list] = {}
    for p in execute(RunConfig(benchmark="synthetic", strategy="naive", tasks=4, seed=0))["probes"]:
        for name, value in p.items():
            expected.setdefault(name, []).append((p["task"], value))
    got = Store(out / "retain.db").probes(run["id"])
    assert got.keys() == expected.keys() - {"task"}
    assert all(got[n] == expected[n] for n in got if n != "probe_seconds")
    assert json.loads((out / "summary.json").read_text())[0]["acc_matrix"] == reference.acc_matrix
    events = Store(out / "retain.db").events(run["id"])
    assert [e["task"] for e in events if e["kind"] == "resumed"] == [1]
    assert list(ckdir.glob("*.pt")) == []


class _Evil:
    """Unpickling this would create a file: the stand-in for arbitrary code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_tampered_checkpoint_with_a_malicious_pickle_is_refused(tmp_path, writer):
    cfg = _cfg()
    marker = tmp_path / "pwned"
    ckpt = path_for(tmp_path / "ck", cfg.key())
    ckpt.parent.mkdir()
    payload = {"format": 1, "run_key": cfg.key(), "task": 0, "strategy": _Evil(marker)}
    if writer == "pickle":
        ckpt.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, ckpt)
    with pytest.raises(DataError, match="checkpoint") as info:
        run_experiment(cfg, checkpoint_dir=tmp_path / "ck")
    assert str(ckpt) in str(info.value)
    assert not marker.exists()


def test_truncated_or_foreign_checkpoints_are_refused(tmp_path):
    cfg = _cfg()
    state = {"model": {"w": torch.ones(2)}}
    rng = {"loop": torch.Generator().get_state()}
    save(path_for(tmp_path, "otherkey"), run_key="otherkey", task=0, strategy_state=state, rng=rng, progress={})
    os.replace(path_for(tmp_path, "otherkey"), path_for(tmp_path, cfg.key()))
    with pytest.raises(DataError, match="belongs to run 'otherkey'"):
        Checkpointer(tmp_path, cfg.key()).resume(None, torch.Generator(), None)
    data = path_for(tmp_path, cfg.key()).read_bytes()
    path_for(tmp_path, cfg.key()).write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="corrupt or truncated"):
        run_experiment(cfg, checkpoint_dir=tmp_path)


def test_state_that_could_not_be_loaded_safely_is_refused_when_saving(tmp_path):
    with pytest.raises(TypeError, match=r"strategy\['buffer'\] is a ndarray"):
        save(tmp_path / "x.pt", run_key="k", task=0, strategy_state={"buffer": np.zeros(3)}, rng={}, progress={})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fixes", [{"redo": True, "redo_every": 3}, {"shrink_perturb": True, "sp_when": "step"},
                                   {"wsc": True}])
def test_resume_with_plasticity_fixes_is_identical(tmp_path, fixes):
    """The plasticity driver keeps state across tasks (step count, its generator, WSC's previous
    weights); a resumed run must restore it too."""
    cfg = lambda: RunConfig(benchmark="synthetic", tasks=3, seed=0, plasticity=dict(fixes))  # noqa: E731
    reference = run_experiment(cfg())
    with pytest.raises(Stop):
        run_experiment(cfg(), checkpoint_dir=tmp_path, after_task=[_stop_at(2)])
    resumed = run_experiment(cfg(), checkpoint_dir=tmp_path)
    assert (resumed.acc_matrix, resumed.losses) == (reference.acc_matrix, reference.losses)


def test_cuda_random_states_are_saved_once_cuda_is_in_use(monkeypatch):
    """Dropout and on-device draws use CUDA's own generators: a checkpoint of a CUDA run keeps them
    (and restores them), a CPU run's checkpoint has none, and a CUDA checkpoint is refused where
    CUDA is absent rather than resumed with different random numbers. CUDA is simulated here."""
    from retain.training.checkpoint import rng_state, set_rng_state

    gen = torch.Generator().manual_seed(0)
    assert "cuda" not in rng_state(gen)  # no CUDA in use: nothing extra, and CUDA is not initialised
    saved = [torch.arange(8, dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: saved)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    state = rng_state(gen)
    assert state["cuda"] is saved
    set_rng_state(state, gen)
    assert restored == [saved]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DataError, match="CUDA random states"):
        set_rng_state(state, gen)


def _damage_blob(blob: dict, case: str) -> dict:
    progress = json.loads(blob["progress"])
    model = blob["strategy"]["model"]
    if case == "bad-shapes":
        first = next(iter(model))
        model[first] = torch.zeros(3)
    elif case == "bad-generator":
        blob["rng"]["loop"] = torch.zeros(5, dtype=torch.uint8)
    elif case == "empty-state":
        blob["strategy"] = {}
    elif case == "bad-buffer":
        blob["strategy"]["buffer"]["x"] = torch.zeros(5, 16)
    elif case == "task-negative":
        blob["task"] = -5
    elif case == "task-99":
        blob["task"] = 99
        progress["acc_matrix"] = progress["acc_matrix"] * 50
        for name in ("task_seconds", "eval_seconds", "losses"):
            progress[name] = progress[name] * 50
    elif case == "bad-matrix":
        progress["acc_matrix"] = [[2.0, "x"]]
    elif case == "no-progress":
        progress = {}
    blob["progress"] = json.dumps(progress)
    return blob


@pytest.mark.parametrize("case", ["bad-shapes", "bad-generator", "empty-state", "bad-buffer", "task-negative",
                                  "task-99", "bad-matrix", "no-progress"])
def test_a_checkpoint_wrong_inside_is_one_line_and_moved_aside(tmp_path, capsys, case):
    """Loads safely but is wrong inside: one line naming the file and the fix, exit 2, no failed
    record in the store, and the file moved aside so the command run again starts afresh."""
    from retain.cli.main import main
    from retain.diagnostics.probes import make_probe_hooks

    cfg = RunConfig(benchmark="synthetic", strategy="er", tasks=3, seed=0, params=dict(TINY))
    stopped = execute(cfg, checkpoint_dir=tmp_path / "ck", after_task=[*make_probe_hooks(), _stop_at(1)])
    assert stopped.status == "failed"  # as the CLI's run would have been killed, after task 1's checkpoint
    ckpt = path_for(tmp_path / "ck", cfg.key())
    torch.save(_damage_blob(torch.load(ckpt, weights_only=True), case), ckpt)
    argv = ["run", "--benchmark", "synthetic", "--strategy", "er", "--tasks", "3", "--seeds", "1", "--buffer-size",
            "32", "--replay-batch-size", "16", "--checkpoint-dir", str(tmp_path / "ck"), "--out", str(tmp_path / "o"),
            "--threads", "1", "--quiet", "--no-report", "--warnings", "none"]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"retain: error: {ckpt}: checkpoint is damaged inside ("), err
    assert f"moved it to {ckpt.name}.damaged, so running the command again starts the run afresh" in err
    assert not ckpt.exists() and ckpt.with_name(ckpt.name + ".damaged").is_file()
    db = tmp_path / "o" / "retain.db"
    assert not db.exists() or Store(db, readonly=True).runs() == []  # no failed record
    assert main(argv) == 0  # afresh
    assert [r.status for r in Store(db, readonly=True).runs()] == ["finished"]
