"""The default torch thread count of a run: the cores that the concurrent runs leave free, less
the cores other work is using right now. On a machine another job keeps busy, a run given
both of two cores is several times slower than one given one (its threads wait for each other
at every product: 65 s against 22 s for one 5-task command at load 3-4), so the choice looks
at how busy the cores are just before the study starts (a quarter of a second of
``/proc/stat``; the load average where there is none) and says why it chose what it did; the
reason goes into every record it made (``extra.threads_choice``)."""

from __future__ import annotations

import os
import time

from retain.execution.executors import available_cores, threads_per_run

#: How long the cores' use is sampled before a study.
SAMPLE_SECONDS = 0.25


def _cpu_times() -> tuple[float, float] | None:
    """(idle, total) jiffies of all CPUs since boot, from /proc/stat; None where it cannot be read."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [float(v) for v in fields[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)  # idle + iowait
    return idle, sum(values[:8])  # guest time is already counted in user


def busy_cores(sample: float = SAMPLE_SECONDS) -> float | None:
    """How many of the machine's cores other processes keep busy now: the share of CPU time not
    idle over ``sample`` seconds, times the CPU count; the 1-minute load average where /proc/stat
    cannot be read; None where neither can."""
    first = _cpu_times()
    if first is not None:
        time.sleep(sample)
        second = _cpu_times()
        if second is not None and second[1] > first[1]:
            idle = (second[0] - first[0]) / (second[1] - first[1])
            return max(0.0, 1.0 - idle) * (os.cpu_count() or 1)
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def default_threads(runs_at_once: int, *, cores: int | None = None, busy: float | None = None,
                    measure=None) -> tuple[int, str]:
    """(torch threads per run, why) for ``runs_at_once`` concurrent runs: the cores the runs
    share (:func:`threads_per_run`), but no more than the cores left idle by other work, and at
    least one."""
    cores = cores or available_cores()
    share = threads_per_run(runs_at_once, cores)
    busy = (measure or busy_cores)() if busy is None else busy
    if busy is None:
        return share, f"{cores} cores for {runs_at_once} run(s) at once: {share} each (how busy they are is unknown)"
    free = max(0.0, cores - busy)
    threads = max(1, min(share, int(free / max(1, runs_at_once) + 0.5)))
    why = (f"{cores} cores for {runs_at_once} run(s) at once, about {busy:.1f} of them busy with other work: "
           f"{threads} each")
    if threads < share:
        why += f" (not {share}: threads of one run waiting for a busy core slow it several times over)"
    return threads, why
