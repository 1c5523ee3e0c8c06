"""One writer per store: two `retain run` on one store at once both end with exit 0 and every
run recorded once (the second waits for the first, then runs only what is missing); a writer
killed with SIGKILL holds nobody up; a finished run is never recorded twice."""

from __future__ import annotations

import fcntl
import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from processes import env, lock_is_free, retain, wait_until
from retain.store import Store
from retain.store.lock import lock_path

#: The issue's example, small: two strategies x two seeds on the synthetic benchmark.
STUDY = ["--benchmark", "synthetic", "--strategy", "naive", "--strategy", "er", "--buffer-size", "50",
         "--seeds", "2", "--tasks", "2", "--epochs", "1", "--hidden", "16", "--quiet", "--no-report"]


def _finished(db: Path) -> list[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return [k for (k,) in conn.execute("SELECT run_key FROM runs WHERE status = 'finished'")]


@pytest.mark.slow
def test_two_writers_on_one_store_both_finish_and_record_each_run_once(tmp_path):
    out = tmp_path / "shared-out"
    out.mkdir()
    # Hold the lock as a first writer would, so that both commands are surely started while the
    # store is busy; let go once both wait, and they race each other for it.
    fd = os.open(lock_path(out / "retain.db"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    logs = [tmp_path / "a.err", tmp_path / "b.err"]
    procs = [subprocess.Popen(retain("run", *STUDY, "--out", str(out)), env=env(), stdout=subprocess.DEVNULL,
                              stderr=log.open("w")) for log in logs]
    try:
        assert wait_until(lambda: all("waiting for it to finish" in log.read_text() for log in logs), 120), \
            [log.read_text() for log in logs]
    finally:
        os.close(fd)
    codes = [p.wait(timeout=300) for p in procs]
    errs = [log.read_text() for log in logs]
    assert codes == [0, 0], errs
    assert not any("Traceback" in e or "IntegrityError" in e for e in errs), errs
    keys = _finished(out / "retain.db")
    assert len(keys) == 4 and len(set(keys)) == 4
    with sqlite3.connect(out / "retain.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone() == (4,)  # no failed duplicate either
    assert lock_is_free(out / "retain.db")


def test_a_writer_killed_with_sigkill_leaves_the_store_free(tmp_path):
    out = tmp_path / "out"
    long = [("200" if prev == "--epochs" else a) for prev, a in zip(["", *STUDY], STUDY)]  # runs long enough to kill
    proc = subprocess.Popen(retain("run", *long, "--out", str(out)), env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: not lock_is_free(out / "retain.db"), 120)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert wait_until(lambda: lock_is_free(out / "retain.db"), 10)
    with Store(out / "retain.db") as store:  # a new writer gets in at once
        assert store.conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_a_finished_run_is_never_recorded_twice(tmp_path):
    from retain.config.run import RunConfig
    from retain.execution.execute import execute

    rec = execute(RunConfig(benchmark="synthetic", tasks=2, epochs=1, hidden=(8,)).validate(), study="")
    with Store(tmp_path / "r.db") as store:
        first = store.save_run(rec)
        assert store.save_run(rec | {}) == first  # another writer finished it meanwhile: kept once
        failed = rec | {"status": "failed", "error": "boom"}
        assert store.save_run(failed) != store.save_run(failed | {})  # failures are history: each kept
        counts = store.conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status ORDER BY status").fetchall()
    assert counts == [("failed", 2), ("finished", 1)]


def test_stores_of_one_file_in_one_process_share_the_lock_and_give_it_back(tmp_path):
    path = tmp_path / "r.db"
    a = Store(path)
    b = Store(path)  # the same process is the same writer: no wait for itself
    assert not lock_is_free(path)
    a.close()
    assert not lock_is_free(path)
    b.close()
    assert lock_is_free(path)
    Store(path)  # dropped without close: the lock goes with it
    assert lock_is_free(path)
    with Store(path, readonly=True):  # readers take no lock
        assert lock_is_free(path)
