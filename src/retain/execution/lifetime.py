"""The processes a driver starts end with it, however it ends (``kill -9`` included): a worker
left behind would finish runs that nobody records, holding memory and cores.

- Process-pool workers watch the driver themselves (:func:`exit_with`, started by the pool's
  initializer). PR_SET_PDEATHSIG cannot do it: a worker's parent is the fork server, not the
  driver, and the fork server lives on while any worker holds its pipe.
- A local Ray kills its raylet and GCS with the driver, but its agents wait up to a minute to
  report the death to the (dead) GCS. :class:`Reaper` is a small process beside the driver that
  keeps a list of the driver's descendants and SIGKILLs the rest when the driver is gone
  (Linux, where /proc lists processes; elsewhere it does nothing).

Run as a script (``python -I lifetime.py PID``) this file is the reaper; it imports nothing of
retain, so it starts in milliseconds."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time

_SCAN_SECONDS = 0.5


def exit_with(driver: int) -> None:
    """End this process (a worker) as soon as process ``driver`` ends; returns at once."""
    threading.Thread(target=_wait_then_exit, args=(driver,), name="retain-exit-with-driver", daemon=True).start()


def _wait_then_exit(driver: int) -> None:
    try:
        fd = os.pidfd_open(driver)  # Linux >= 5.3: readable once the driver has ended
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        select.select([fd], [], [])
    else:
        while _alive(driver):
            time.sleep(_SCAN_SECONDS)
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process under that pid: alive
        pass
    return True


class Reaper:
    """While open, a reaper process kills this process's descendants if this process dies first."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        if sys.platform.startswith("linux"):
            self.proc = subprocess.Popen([sys.executable, "-I", os.path.abspath(__file__), str(os.getpid())],
                                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)

    def close(self) -> None:
        """This process ends its children itself (e.g. ray.shutdown): the reaper just goes."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc.stdin.close()
            self.proc = None


def _descendants(root: int, me: int) -> set[tuple[int, str]]:
    """(pid, start time) of every process below ``root`` except ``me`` (the start time tells a
    reused pid from the process we saw)."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append((int(entry), fields[19]))
    found, todo = set(), [root]
    while todo:
        for pid, start in children.get(todo.pop(), []):
            found.add((pid, start))
            todo.append(pid)
    return found


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _reap(driver: int) -> None:
    """Until stdin (a pipe from the driver) ends, keep the list of the driver's descendants;
    then SIGKILL those still there. A driver that ends its children itself kills us first."""
    me, seen = os.getpid(), set()
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], _SCAN_SECONDS)
        if ready and not os.read(sys.stdin.fileno(), 1):
            break
        if os.getppid() != driver:  # the pipe may still be held by a child of the driver
            break
        seen |= _descendants(driver, me)
    for pid, start in seen:
        if _start_time(pid) == start:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


if __name__ == "__main__":
    _reap(int(sys.argv[1]))
