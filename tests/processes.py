"""Helpers for tests that start real `retain` processes: who is left of a process tree, and
whether a store's writer lock is free. Linux (/proc)."""

from __future__ import annotations

import fcntl
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def env() -> dict[str, str]:
    """The environment for `python -m retain` subprocesses: this checkout's sources, one thread."""
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}


def retain(*args: str) -> list[str]:
    return [sys.executable, "-m", "retain", *args]


def session(sid: int) -> dict[int, str]:
    """Live (not zombie) processes of session ``sid`` with their command lines. Started with
    ``start_new_session=True``, a driver's pid is its session id, and every process it starts
    (fork server, workers, resource tracker, Ray) stays in the session unless it leaves it."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # ended while we looked
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            out[int(entry)] = cmd
    return out


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def lock_is_free(store: Path) -> bool:
    """Whether no process holds ``store``'s writer lock (retain.store.lock) now."""
    path = store.with_name(store.name + ".lock")
    if not path.exists():
        return True
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # also drops the lock if we got it
    return True
