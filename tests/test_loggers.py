"""Loggers (retain.loggers): TensorBoard written while a run runs, MLflow's local file store and
W&B's offline run read back with each package's own reader or file format, a user-written logger
called in order, a failing logger that does not lose the run, entry-point loggers, and the
`retain run --logger` flag in a process pool (never part of the run key)."""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from processes import env, retain
from retain.config.run import RunConfig, RunSpec, as_spec
from retain.errors import ConfigError
from retain.execution.execute import execute
from retain.loggers import LOGGERS, Logger, LoggerSpec, metrics_so_far, parse_logger, register_logger
from retain.metrics.matrix import summarize
from retain.store import Store
from retain.training.loop import build


def _cfg(strategy: str = "naive") -> RunSpec:
    return RunConfig(benchmark="permuted-digits", strategy=strategy, tasks=2, seed=0, hidden=(32,)).resolve()


def _steps_per_task(cfg: RunSpec | RunConfig) -> list[int]:
    cfg = as_spec(cfg)
    """Optimiser steps of each task, counted from the data: epochs x batches."""
    bench, _ = build(cfg)
    return [cfg.epochs * math.ceil(e.num_train / cfg.batch_size) for e in bench.experiences]


@register_logger("test-recorder")
class Recorder(Logger):
    """A user's logger: keeps every call (the class attribute collects across instances)."""

    calls: list[tuple] = []

    def start_run(self, info):
        Recorder.calls.append(("start_run", info.key, info.strategy, info.config["seed"]))

    def log_steps(self, task, first_step, losses):
        Recorder.calls.append(("log_steps", task, first_step, list(losses)))

    def log_task(self, task, accuracies, metrics):
        Recorder.calls.append(("log_task", task, list(accuracies), dict(metrics)))

    def end_run(self, status, metrics):
        Recorder.calls.append(("end_run", status, dict(metrics)))

    def close(self):
        Recorder.calls.append(("close",))


@register_logger("test-broken")
class Broken(Recorder):
    """Fails in its first log_task; must be warned about once and not lose the run."""

    def log_task(self, task, accuracies, metrics):
        raise OSError("disk full")


def test_a_users_logger_receives_every_call_in_order():
    Recorder.calls.clear()
    cfg = _cfg()
    rec = execute(cfg, loggers=[LoggerSpec("test-recorder")], after_task=[])
    steps = _steps_per_task(cfg)
    assert [c[0] for c in Recorder.calls] == ["start_run", "log_steps", "log_task", "log_steps", "log_task",
                                              "end_run", "close"]
    assert Recorder.calls[0] == ("start_run", rec["run_key"], "naive", 0)
    (_, t0, first0, loss0), (_, t1, first1, loss1) = Recorder.calls[1], Recorder.calls[3]
    assert (t0, first0, len(loss0)) == (0, 1, steps[0]) and (t1, first1, len(loss1)) == (1, steps[0] + 1, steps[1])
    # The per-step losses are the ones whose mean the run records for each task.
    assert np.mean(loss0) == pytest.approx(rec["losses"][0], rel=1e-5)
    assert np.mean(loss1) == pytest.approx(rec["losses"][1], rel=1e-5)
    assert Recorder.calls[2][2] == rec["acc_matrix"][0] and Recorder.calls[4][2] == rec["acc_matrix"][1]
    assert Recorder.calls[2][3]["avg_acc"] == pytest.approx(rec["acc_matrix"][0][0])
    assert Recorder.calls[4][3] == pytest.approx(rec["metrics"])  # after the last task: the run's metrics
    assert Recorder.calls[5] == ("end_run", "finished", rec["metrics"])


def test_a_failing_logger_is_warned_about_once_and_the_run_goes_on():
    Recorder.calls.clear()
    with pytest.warns(RuntimeWarning, match="logger test-broken: log_task failed .OSError: disk full") as caught:
        rec = execute(_cfg(), loggers=[LoggerSpec("test-broken"), LoggerSpec("test-recorder")], after_task=[])
    assert len([w for w in caught if "test-broken" in str(w.message)]) == 1
    assert rec["status"] == "finished" and len(rec["extra"]["logger_errors"]) == 1
    # The broken logger was closed and dropped; the healthy one saw the whole run.
    names = [c[0] for c in Recorder.calls]
    assert names.count("start_run") == 2 and names.count("close") == 2 and names.count("end_run") == 1
    assert names.count("log_task") == 2


def test_metrics_so_far_are_those_of_the_seen_block():
    R = [[0.9, 0.1, 0.2], [0.5, 0.8, 0.1]]
    assert metrics_so_far(R, [0.1, 0.1, 0.1]) == summarize([[0.9, 0.1], [0.5, 0.8]], [0.1, 0.1])
    assert metrics_so_far(R, [0.1, 0.1, 0.1], train_once=True) == {"avg_acc": pytest.approx(0.65)}


# ---- TensorBoard -------------------------------------------------------------------------------
def _scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})  # 0: keep every event
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_shows_the_first_task_while_the_run_is_still_going(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    cfg = _cfg()
    steps = _steps_per_task(cfg)
    seen_live: dict[str, list] = {}

    def during_second_task(ctx):  # runs before the loggers' hook of the same task: task 1's data only
        if ctx.task == 1:
            (run_dir,) = (tmp_path / "tb").iterdir()
            seen_live.update(_scalars(run_dir))

    rec = execute(cfg, loggers=[LoggerSpec("tensorboard", str(tmp_path / "tb"), str(tmp_path))],
                  after_task=[during_second_task])
    assert len(seen_live["train/loss"]) == steps[0]  # flushed after task 1, before the run ended
    assert [s for s, _ in seen_live["accuracy/task_1"]] == [1] and "final/avg_acc" not in seen_live

    (run_dir,) = (tmp_path / "tb").iterdir()
    assert run_dir.name.endswith(rec["run_key"])
    final = _scalars(run_dir)
    loss = final["train/loss"]
    assert [s for s, _ in loss] == list(range(1, sum(steps) + 1))  # one point per optimiser step
    assert np.mean([v for _, v in loss[: steps[0]]]) == pytest.approx(rec["losses"][0], rel=1e-5)
    for i, row in enumerate(rec["acc_matrix"], start=1):
        for j, value in enumerate(row, start=1):
            assert dict(final[f"accuracy/task_{j}"])[i] == pytest.approx(value, abs=1e-6)
    assert final["final/avg_acc"] == [(2, pytest.approx(rec["metrics"]["avg_acc"], abs=1e-6))]


# ---- MLflow ------------------------------------------------------------------------------------
def test_mlflow_local_file_store_holds_params_and_metrics(tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
    from mlflow.tracking import MlflowClient

    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_ALLOW_FILE_STORE"):
        monkeypatch.setenv(var, "")  # remembered, so the logger's own setting is undone after the test
        monkeypatch.delenv(var)
    cfg = _cfg("er")
    steps = _steps_per_task(cfg)
    rec = execute(cfg, study="lg", loggers=[parse_logger("mlflow", tmp_path)], after_task=[])

    client = MlflowClient((tmp_path / "mlruns").resolve().as_uri())  # the default: a file store under OUT
    (run,) = client.search_runs([client.get_experiment_by_name("lg").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["retain.run_key"] == rec["run_key"]
    params = run.data.params
    assert params["strategy"] == "er" and params["benchmark"] == "permuted-digits" and params["hidden"] == "[32]"
    assert params["params.buffer_size"] == "500" and "params" not in params  # nested settings: dotted names
    assert params["benchmark_options"] == "{}"
    loss = client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.step for m in loss) == list(range(1, sum(steps) + 1))
    acc2 = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "accuracy/task_2")}
    assert acc2 == {1: pytest.approx(rec["acc_matrix"][0][1]), 2: pytest.approx(rec["acc_matrix"][1][1])}
    assert run.data.metrics["final/avg_acc"] == pytest.approx(rec["metrics"]["avg_acc"])


def test_mlflow_path_argument_becomes_a_file_store_uri(tmp_path):
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
    spec = parse_logger(f"mlflow:{tmp_path / 'runs'}", tmp_path)
    assert spec.arg == (tmp_path / "runs").resolve().as_uri()
    assert parse_logger("mlflow:sqlite:///x.db").arg == "sqlite:///x.db"  # a URI is kept as given


# ---- Weights & Biases --------------------------------------------------------------------------
def _wandb_records(path: Path) -> list:
    """The records of an offline W&B run file: a 7-byte file header, then 32 KiB blocks of
    chunks (4-byte CRC, 2-byte length, 1-byte type: 1 full, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, part, out = path.read_bytes(), 7, b"", []
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:  # block trailer: padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos: pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        part += data[pos + 7: pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(part)
            out.append(record)
            part = b""
    return out


def test_wandb_offline_run_holds_the_metrics(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="the wandb extra is not installed")
    for var in ("WANDB_MODE", "WANDB_PROJECT", "WANDB_DIR"):
        monkeypatch.delenv(var, raising=False)
    cfg = _cfg()
    steps = _steps_per_task(cfg)
    rec = execute(cfg, loggers=[parse_logger("wandb:cl-test", tmp_path)], after_task=[])
    import wandb

    # run.finish() returns once W&B's service process has the data, which may write the file's
    # last records a moment later; teardown waits for it (a process ending does the same).
    wandb.teardown()

    (run_file,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")  # offline: nothing left the machine
    records = _wandb_records(run_file)
    (run,) = [r.run for r in records if r.HasField("run")]
    assert run.project == "cl-test" and run.display_name.endswith(rec["run_key"])
    config = {i.key: json.loads(i.value_json) for i in run.config.update}
    assert config["strategy"] == "naive" and config["run_key"] == rec["run_key"]
    history = [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
               for r in records if r.HasField("history")]
    loss = [h for h in history if "train/loss" in h]
    assert [h["train/step"] for h in loss] == list(range(1, sum(steps) + 1))
    assert np.mean([h["train/loss"] for h in loss[steps[0]:]]) == pytest.approx(rec["losses"][1], rel=1e-5)
    tasks = [h for h in history if "tasks_trained" in h]
    assert [h["tasks_trained"] for h in tasks] == [1, 2]
    assert tasks[1]["accuracy/task_1"] == pytest.approx(rec["acc_matrix"][1][0])
    summary = {(i.key or "/".join(i.nested_key)): json.loads(i.value_json)
               for r in records if r.HasField("summary") for i in r.summary.update}
    assert summary["final/avg_acc"] == pytest.approx(rec["metrics"]["avg_acc"])
    assert [r.exit.exit_code for r in records if r.HasField("exit")] == [0]  # finished, not crashed


# ---- registry, entry points, command line ------------------------------------------------------
def test_unknown_logger_and_bad_spec_are_refused():
    with pytest.raises(ConfigError, match="unknown logger 'nope'; known: .*mlflow.*tensorboard"):
        parse_logger("nope")
    with pytest.raises(ConfigError, match="expected NAME"):
        parse_logger(":x")
    with pytest.raises(TypeError, match="subclass of retain.loggers.Logger"):
        register_logger("not-a-logger")(object)


def _plugin_package(root: Path) -> Path:
    """An installed package (a module and its dist-info) that declares the logger ``ep-calls``:
    it appends one JSON line per call to the file named by its argument."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "retain_ep_logger.py").write_text(textwrap.dedent('''
        import json, os
        from retain.loggers import Logger

        class CallsLogger(Logger):
            def _write(self, *call):
                with open(self.arg, "a") as f:
                    f.write(json.dumps([os.getpid(), *call]) + "\\n")

            def start_run(self, info):
                self._write("start_run", info.key)

            def log_steps(self, task, first_step, losses):
                self._write("log_steps", task, first_step, len(losses))

            def end_run(self, status, metrics):
                self._write("end_run", status)
    '''))
    info = root / "retain_ep_logger-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: retain-ep-logger\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[retain.loggers]\nep-calls = retain_ep_logger:CallsLogger\n")
    return root


def test_entry_point_logger_loads_on_first_lookup(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(_plugin_package(tmp_path)))
    assert "ep-calls" not in LOGGERS.names()
    cls = LOGGERS.get("ep-calls")
    assert cls.__name__ == "CallsLogger" and "ep-calls" in LOGGERS.names()


def _run_cli(*args: str, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    e = env()
    if extra_path is not None:
        e["PYTHONPATH"] = f"{extra_path}:{e['PYTHONPATH']}"
    return subprocess.run(retain(*args), env=e, capture_output=True, text=True, timeout=300)


_STUDY = ["run", "--benchmark", "permuted-digits", "--tasks", "2", "--seeds", "2", "--strategy", "naive",
          "--hidden", "32", "--epochs", "1", "--quiet", "--no-report"]


@pytest.mark.slow
def test_cli_loggers_run_in_worker_processes_and_stay_out_of_the_run_key(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    plugins = _plugin_package(tmp_path / "site")  # an entry-point logger, loaded in each worker too
    out, calls = tmp_path / "out", tmp_path / "calls.jsonl"
    done = _run_cli(*_STUDY, "--out", str(out), "--workers", "2", "--no-batch-seeds",  # a run per worker process
                    "--logger", f"tensorboard:{tmp_path / 'tb'}",
                    "--logger", f"ep-calls:{calls}", extra_path=plugins)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    keys = {r["run_key"] for r in summary}
    assert {d.name.rsplit("-", 1)[1] for d in (tmp_path / "tb").iterdir()} == keys
    for d in (tmp_path / "tb").iterdir():
        rows = _scalars(d)
        assert sorted(rows["accuracy/task_2"]) == [(1, pytest.approx(rows["accuracy/task_2"][0][1])),
                                                   (2, pytest.approx(rows["accuracy/task_2"][1][1]))]
    lines = [json.loads(line) for line in calls.read_text().splitlines()]
    assert {ln[2] for ln in lines if ln[1] == "start_run"} == keys
    assert len({ln[0] for ln in lines}) == 2  # each run's logger lived in its own worker process
    assert sorted(ln[1] for ln in lines).count("log_steps") == 4
    # --logger says how to run, not what: the same study without it finds both runs done.
    again = _run_cli(*_STUDY, "--out", str(out), "--workers", "1")
    assert again.returncode == 0, again.stderr
    runs = Store(out / "retain.db", readonly=True).runs()
    assert len(runs) == 2 and all("--logger" not in r["extra"]["command"] for r in runs)


def test_cli_refuses_an_unknown_logger_or_a_missing_package_in_one_line(tmp_path, monkeypatch, capsys):
    from retain.cli.main import main

    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` now fails as if not installed
    for logger, message in (("nope", "unknown logger 'nope'"),
                            ("mlflow", "--logger mlflow needs the mlflow package: pip install 'retain[mlflow]'")):
        assert main([*_STUDY, "--out", str(tmp_path / "out"), "--logger", logger]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "retain.db").exists()  # refused before anything was written


def test_the_docs_example_logger_runs(tmp_path, monkeypatch):
    """docs/loggers.md: its two Python blocks (the logger, then a run with it) work as written."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "loggers.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/loggers.md", "exec"), namespace)  # noqa: S102 - our own docs
    record = namespace["record"]
    rows = (tmp_path / "losses.csv").read_text().splitlines()
    steps = _steps_per_task(RunConfig(benchmark="permuted-digits", strategy="naive", tasks=2, seed=0))
    assert record["status"] == "finished" and len(rows) == sum(steps)
    assert rows[-1].split(",")[:3] == [record["run_key"], "1", str(sum(steps))]


def test_an_unreachable_mlflow_server_is_refused_before_the_first_run(tmp_path, monkeypatch):
    """A tracking URI where nothing listens is one line, exit 2, in seconds and before any run;
    a server that answers passes the check, and MLflow's request retries are bounded."""
    import socket
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, HTTPServer

    with socket.socket() as s:  # a port with nothing listening once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "out"
    t0 = time.monotonic()
    r = _run_cli("run", "--logger", f"mlflow:http://127.0.0.1:{port}", "--benchmark", "synthetic", "--strategy",
                 "naive", "--seeds", "1", "--tasks", "2", "--quiet", "--no-report", "--out", str(out))
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert f"--logger mlflow:http://127.0.0.1:{port}: cannot reach the tracking server at 127.0.0.1:{port}" in r.stderr
    assert time.monotonic() - t0 < 60 and not out.exists()  # refused before a store or a run

    server = HTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
            monkeypatch.setenv(name, "")  # recorded, so the check's defaults are undone after the test
            monkeypatch.delenv(name)
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        assert parse_logger(f"mlflow:{uri}", tmp_path).arg == uri
        import os

        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"
    finally:
        server.shutdown()
        server.server_close()
