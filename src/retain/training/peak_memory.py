"""Peak resident memory of one run, not of the process that happened to run it.

``getrusage``'s ``ru_maxrss`` is the high-water mark of the whole process: when several runs share
a process (a study run in-process, a worker of a pool), every run after the biggest one reports
the biggest one's peak. On Linux the kernel lets a process reset its own high-water mark: writing
``5`` to ``/proc/self/clear_refs`` sets ``VmHWM`` back to the current resident size (proc(5)), so
reading ``VmHWM`` from ``/proc/self/status`` at the end gives the peak since the run started
(including what the process already held then: the interpreter, torch, loaded data).

Where that is impossible (not Linux, a kernel or sandbox that refuses the write) the process
high-water mark is the fallback, and :attr:`PeakMemory.source` says which one a figure is.
"""

from __future__ import annotations

import re
import resource
import sys
from pathlib import Path

#: The two kinds of figure: the peak since the run started, or the process's peak since it started.
RUN_PEAK, PROCESS_PEAK = "vmhwm-run", "ru_maxrss-process"

_STATUS, _CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def _vmhwm_mb() -> float | None:
    try:
        m = re.search(r"^VmHWM:\s+(\d+)\s+kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(m.group(1)) / 1024 if m else None


def _maxrss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


class PeakMemory:
    """Call :meth:`start` when a run starts and :meth:`peak_mb` when it ends."""

    def __init__(self) -> None:
        self.source = PROCESS_PEAK

    def start(self) -> None:
        """Reset the kernel's high-water mark when it can be reset (it is process-wide)."""
        self.source = PROCESS_PEAK
        if _vmhwm_mb() is None:
            return
        try:
            _CLEAR_REFS.write_text("5")
        except OSError:  # e.g. a kernel without CONFIG_PROC_PAGE_MONITOR, or a read-only /proc
            return
        self.source = RUN_PEAK

    def peak_mb(self) -> float:
        """Peak resident set in MiB, of the run when :attr:`source` is ``RUN_PEAK``."""
        if self.source == RUN_PEAK:
            peak = _vmhwm_mb()
            if peak is not None:
                return peak
            self.source = PROCESS_PEAK
        return _maxrss_mb()
