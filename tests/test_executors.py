"""Executors and resume: in-process, process pool, Ray; only the driver writes the store; a
killed study started again runs only what is missing."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from processes import env, lock_is_free, retain, session, wait_until
from retain.cli.main import main
from retain.config.run import RunConfig
from retain.config.study_file import load_study
from retain.errors import ConfigError
from retain.execution.executors import InProcess, ProcessPool, Ray, make_executor, run_study
from retain.store import Store

ROOT = Path(__file__).resolve().parents[1]


def configs(n: int = 4) -> list[RunConfig]:
    return [RunConfig(benchmark="synthetic", strategy=s, seed=seed, epochs=1, hidden=(16,)).validate()
            for s in ("naive", "joint") for seed in range(n // 2)]


def test_resume_runs_only_what_is_missing(tmp_path):
    store = Store(tmp_path / "r.db")
    cfgs = configs()
    first = run_study(cfgs[:2], store, InProcess(), study="s")
    assert (first.ran, first.reused) == (2, 0)
    seen = []
    second = run_study(cfgs, store, InProcess(), study="s", extra={"command": "retain run x"},
                       on_record=lambda r: seen.append(r["run_key"]))
    assert (second.ran, second.reused) == (2, 2)
    assert seen == [c.key() for c in cfgs[2:]]
    assert [r["run_key"] for r in second.records] == [c.key() for c in cfgs]
    third = run_study(cfgs, store, InProcess(), study="s")
    assert (third.ran, third.reused) == (0, 4)
    rows = store.runs()
    assert len(rows) == 4 and rows[-1]["extra"]["command"] == "retain run x"


@pytest.mark.slow
def test_process_pool_matches_in_process_and_streams_into_the_store(tmp_path):
    cfgs = configs()
    local = {r["run_key"]: r["acc_matrix"] for r in run_study(cfgs, Store(tmp_path / "a.db"), InProcess()).records}
    store = Store(tmp_path / "b.db")
    counts = []
    out = run_study(cfgs, store, ProcessPool(2), on_record=lambda r: counts.append(len(store.runs())))
    assert counts == [1, 2, 3, 4]  # each record is saved by the driver as it arrives
    assert {r["run_key"]: r["acc_matrix"] for r in out.records} == local  # same numbers in workers
    assert {r["run_key"] for r in store.runs()} == set(local)


@pytest.mark.slow
def test_ray_on_a_local_two_cpu_cluster(tmp_path):
    ray = pytest.importorskip("ray")
    cfgs = configs(2)
    local = {r["run_key"]: r["acc_matrix"] for r in run_study(cfgs, Store(tmp_path / "a.db"), InProcess()).records}
    out = run_study(cfgs, Store(tmp_path / "b.db"), Ray(num_cpus=2), study="ray")
    try:
        assert {r["run_key"]: r["acc_matrix"] for r in out.records} == local
        assert all(r["study"] == "ray" for r in Store(tmp_path / "b.db").runs())
    finally:
        assert not ray.is_initialized()  # the executor shut down the Ray it started
        ray.shutdown()


def test_make_executor_choices_and_errors():
    assert isinstance(make_executor(), InProcess)
    assert isinstance(make_executor(workers=3), ProcessPool)
    assert isinstance(make_executor("ray", address="auto"), Ray)
    with pytest.raises(ConfigError, match="--workers must be >= 1"):
        make_executor(workers=0)
    with pytest.raises(ConfigError, match="--address is for --backend ray"):
        make_executor(address="10.0.0.1:6379")


# Enough work after the first records that the kill lands halfway: naive's 4 seeds train as one
# ensemble and finish together, and at per_class = 128 the whole study finished within 0.3 s of its
# first record on a fast host (the kill came too late); here joint's runs take ~0.5 s each after it.
STUDY = """\
[study]
name = "killme"
seeds = 4
[settings]
tasks = 2
epochs = 4
hidden = [32]
[benchmarks.synthetic]
[benchmarks.synthetic.options]
per_class = 4096
[strategies.naive]
[strategies.joint]
"""


def _finished(db: Path) -> list[tuple[int, str, float]]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
            return c.execute("SELECT id, run_key, finished_at FROM runs WHERE status = 'finished'").fetchall()
    except sqlite3.OperationalError:  # the schema is not there yet
        return []


@pytest.mark.slow
def test_sigkill_halfway_then_resume_loses_and_repeats_nothing(tmp_path):
    (tmp_path / "s.toml").write_text(STUDY)
    db = tmp_path / "out" / "retain.db"
    cmd = [sys.executable, "-m", "retain", "run", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out"),
           "--quiet", "--no-report"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while len(_finished(db)) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _finished(db)
    assert proc.returncode == -signal.SIGKILL
    assert 2 <= len(before) < 8, "the kill must land halfway through the study"
    assert subprocess.run(cmd, env=env, capture_output=True, timeout=300).returncode == 0
    after = _finished(db)
    assert len(after) == 8 and len({k for _, k, _ in after}) == 8  # all there, none twice
    assert set(before) <= set(after)  # the runs finished before the kill kept their rows
    keys = {c.key for c in load_study(tmp_path / "s.toml").configs}
    assert {k for _, k, _ in after} == keys


@pytest.mark.slow
def test_cli_study_file_with_workers_writes_report(tmp_path):
    (tmp_path / "s.toml").write_text('[study]\nseeds = 2\n[settings]\nepochs = 1\nhidden = [16]\n'
                                     '[benchmarks.synthetic]\n[strategies.naive]\n')
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "s.toml"), "--out", str(out), "--workers", "2", "--quiet"]) == 0
    runs = Store(out / "retain.db").runs()
    assert len(runs) == 2 and {r["study"] for r in runs} == {"s"}
    assert all(r["extra"]["command"] == f"retain run {tmp_path / 's.toml'}" for r in runs)
    assert "## Reproduce" in (out / "report.md").read_text() and (out / "report.html").is_file()


def test_cli_refuses_study_file_mixed_with_study_flags(tmp_path, capsys):
    (tmp_path / "s.toml").write_text("[benchmarks.synthetic]\n[strategies.naive]\n")
    assert main(["run", str(tmp_path / "s.toml"), "--seeds", "5", "--out", str(tmp_path)]) == 2
    assert "do not mix (got --seeds)" in capsys.readouterr().err


def test_cli_flags_record_the_command_that_reproduces_them(tmp_path):
    args = ["run", "--benchmark", "synthetic", "--strategy", "naive", "--seeds", "1", "--epochs", "1",
            "--hidden", "8,8", "--out", str(tmp_path), "--quiet", "--no-report"]
    assert main(args) == 0
    command = Store(tmp_path / "retain.db").runs()[0]["extra"]["command"]
    assert command.startswith("retain run ") and "--out" not in command and "--quiet" not in command
    for part in ("--benchmark synthetic", "--strategy naive", "--seeds 1", "--epochs 1", "--hidden 8,8"):
        assert part in command


# ---- no orphans: the driver's end is its workers' end ------------------------------------------
# Long enough (about 20 s of training on 2 idle cores) that the signal surely reaches a driver whose
# workers are still training: at 200 epochs the runs took about 2 s and, on a loaded machine, a study
# could end before the signal arrived (exit 0 instead of 130).
_POOL_STUDY = ["--benchmark", "synthetic", "--strategy", "naive", "--seeds", "4", "--tasks", "3", "--epochs", "2000",
               "--hidden", "16", "--quiet", "--no-report", "--workers", "2", "--no-batch-seeds"]  # a run per worker


def _start_driver(out: Path, *extra: str, ready: int) -> tuple[subprocess.Popen, dict[int, str]]:
    """Start `retain run` in a session of its own; wait until ``ready`` processes besides the
    driver are up (its pool, fork server and resource tracker, or its Ray)."""
    # SIGINT at its default in the driver, as a shell gives a command it runs: a test suite started in the
    # background of a script inherits SIGINT ignored, and Python then never raises KeyboardInterrupt.
    proc = subprocess.Popen(retain("run", *_POOL_STUDY, "--out", str(out), *extra), env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert wait_until(lambda: len(session(proc.pid)) > ready or proc.poll() is not None, 180, 0.2)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    return proc, session(proc.pid)


@pytest.mark.slow
def test_workers_end_within_seconds_of_a_sigkilled_driver(tmp_path):
    proc, seen = _start_driver(tmp_path, ready=4)  # fork server, resource tracker, 2 workers
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert wait_until(lambda: not session(proc.pid), 10), (seen, session(proc.pid))
    assert lock_is_free(tmp_path / "retain.db")  # no child kept the store's writer lock


@pytest.mark.slow
@pytest.mark.parametrize("ready", [2, 4], ids=["workers-starting", "workers-training"])
def test_an_interrupted_driver_stops_its_workers_instead_of_waiting_for_them(tmp_path, ready):
    """Ctrl-C ends the driver with 130 and a one-line message, no traceback from the pool's
    teardown: neither while the fork server (with the resource tracker: 2 processes) still starts
    the first worker, nor while both workers train."""
    proc, _ = _start_driver(tmp_path, ready=ready)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert wait_until(lambda: not session(proc.pid), 10), session(proc.pid)
    err = proc.stderr.read().decode()  # after the session is gone: every process's output is in
    assert "retain: interrupted" in err and "Traceback" not in err, err[-3000:]


def test_a_ctrl_c_while_workers_start_is_held_until_they_have_started():
    from retain.execution.executors import _sigint_held

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a shell, whatever ran the tests
    try:
        reached = False
        with pytest.raises(KeyboardInterrupt):
            with _sigint_held():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)  # the handler runs here: held, not raised
                reached = True
        assert reached and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with _sigint_held():  # nothing arrived: nothing raised
            pass
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.slow
def test_a_local_ray_ends_with_its_sigkilled_driver(tmp_path):
    pytest.importorskip("ray")
    proc = subprocess.Popen(retain("run", *_POOL_STUDY, "--backend", "ray", "--out", str(tmp_path)), env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    running = lambda: any("ray::_ray_task" in cmd for cmd in session(proc.pid).values())
    assert wait_until(lambda: running() or proc.poll() is not None, 240, 0.5)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    seen = session(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert wait_until(lambda: not session(proc.pid), 20), (seen, session(proc.pid))


def test_a_ray_address_where_nothing_listens_is_one_line_in_seconds(tmp_path):
    import socket

    with socket.socket() as s:  # a port with nothing listening once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "out"
    t0 = time.monotonic()
    r = subprocess.run(retain("run", "--benchmark", "synthetic", "--strategy", "naive", "--seeds", "1", "--tasks", "2",
                              "--backend", "ray", "--address", f"127.0.0.1:{port}", "--out", str(out)),
                       env=env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert f"--address 127.0.0.1:{port}: no Ray cluster answers at 127.0.0.1:{port}" in r.stderr
    assert time.monotonic() - t0 < 60 and not out.exists() and "study" not in r.stdout


def test_a_local_ray_keeps_its_log_lines_out_of_retains_output(tmp_path):
    args = ["run", "--benchmark", "synthetic", "--strategy", "naive", "--seeds", "1", "--tasks", "2", "--epochs", "1",
            "--backend", "ray", "--quiet", "--no-report", "--warnings", "none"]
    r = subprocess.run(retain(*args, "--out", str(tmp_path / "a")), env=env(), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    said = r.stdout + r.stderr
    assert " INFO " not in said and " WARNING " not in said and "Started a local Ray" not in said, said
    shown = subprocess.run(retain(*args, "--out", str(tmp_path / "b")), env=env() | {"RETAIN_RAY_LOGS": "1"},
                           capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0 and "Started a local Ray instance" in shown.stdout + shown.stderr
