"""One writer per store: an exclusive advisory lock on ``<store>.lock``, held while a process
may write the store.

A second ``retain run`` on the same store waits here for the first to finish (and says so), then
reads which runs are finished and runs only the rest: both end with every run recorded once. The
kernel drops the lock when its process ends, however it ends (``kill -9`` included), so a stale
lock cannot block anyone. Within one process every writing Store of a file shares one lock (the
process is one writer; its Stores write one after another). Where ``fcntl`` is missing
(Windows) there is no lock; ``Store.save_run`` still never records a finished run twice."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from retain.errors import StoreError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

_held: dict[str, list[int]] = {}  # lock file -> [fd, Stores using it]
_guard = threading.Lock()


def lock_path(store: Path) -> Path:
    return store.with_name(store.name + ".lock")


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (pid {text})" if text.isdigit() else ""


def acquire(store: Path) -> str:
    """Take the writer lock of ``store`` (waiting for another writer to finish); returns the
    key to give back to :func:`release`."""
    path = lock_path(store.resolve())  # a store reached through a symlink has the same lock
    key = str(path)
    with _guard:
        if key in _held:
            _held[key][1] += 1
            return key
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"{path}: cannot create the store's lock file ({exc.strerror})") from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"retain: {store} is being written by another retain process{_holder(fd)}; waiting "
                      f"for it to finish (Ctrl-C to stop)", file=sys.stderr, flush=True)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        _held[key] = [fd, 1]
        return key


def release(key: str) -> None:
    with _guard:
        entry = _held.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del _held[key]
            os.close(entry[0])  # closing the last descriptor drops the lock
