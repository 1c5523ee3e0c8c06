"""What a study shows while it runs: its runs' steps with an ETA, as bars in a terminal
(:class:`Bars`) or as plain lines when the output is a file, a pipe or CI (:class:`Lines`: one
when a task ends, one every RETAIN_PROGRESS_SECONDS, default 60, one when a run ends). Both
say when a run's data are loading, and once a study, after a run's first task, the planned
steps and when the run and the study should end, if that is more than a few minutes away.

A report is ``(job, steps done, steps total, description)`` from the run loops
(:mod:`retain.training.ticker`), the job being a run's RunSpec or an ensemble of runs; a
record ends its job. Reports may come from a thread that relays a process pool's workers, so
the state is kept under a lock."""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

#: Seconds between two plain progress lines of a run (besides the line at each task's end).
EVERY_ENV = "RETAIN_PROGRESS_SECONDS"
DEFAULT_EVERY = 60.0
#: A run or study expected to take longer than this gets the line with its plan and ETA.
PLAN_SECONDS = 300.0

_TASK = re.compile(r"task (\d+)/(\d+)")


def label(job: Any) -> str:
    return f"{job.strategy} seed {job.seed} order {job.order}"


def keys_of(job: Any) -> list[str]:
    members = getattr(job, "members", None)
    return [m.key for m in members] if members is not None else [job.key]


def clock_text(seconds: float) -> str:
    """``0:02:05``; ``3 days, 4:00:00`` past a day (as timedelta prints, without fractions)."""
    seconds = max(0, int(round(seconds)))
    days, rest = divmod(seconds, 86400)
    text = f"{rest // 3600}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days} day{'s' if days != 1 else ''}, {text}" if days else text


@dataclass
class _Run:
    label: str
    done: int = 0
    total: int = 0
    desc: str = ""
    trained_from: float | None = None  # when its first task started (after the data loaded)
    first_task: tuple[float, int] | None = None  # (seconds, steps) of its first task, once done
    reported: float = 0.0  # when its last plain line was written
    extra: dict = field(default_factory=dict)

    def eta(self, now: float) -> float | None:
        if self.trained_from is None or self.done <= 0 or self.total <= 0:
            return None
        return (now - self.trained_from) / self.done * (self.total - self.done)


class Watch:
    """The state both displays share: each job's steps, the first task's pace, the plan line."""

    def __init__(self, *, runs: int, already: int = 0, workers: int = 1, clock=time.monotonic):
        self.runs, self.finished, self.workers, self.clock = runs, already, max(1, workers), clock
        self.started = clock()
        self.ended_here = 0
        self.jobs: dict[int, _Run] = {}
        self.by_key: dict[str, int] = {}
        self.planned = False
        self.lock = threading.Lock()

    # ---- what the executors call -------------------------------------------------------------
    def step(self, job: Any, done: int, total: int, desc: str) -> None:
        with self.lock:
            now = self.clock()
            run = self.jobs.get(id(job))
            if run is None:
                run = self.jobs[id(job)] = _Run(label(job))
                self.by_key.update({k: id(job) for k in keys_of(job)})
                self.opened(id(job), run)
            task = _TASK.search(desc)
            if task and run.trained_from is None:
                run.trained_from = now
            if task and run.first_task is None and int(task.group(1)) == 2 and run.trained_from is not None:
                run.first_task = (now - run.trained_from, done)
                self._plan(run, now)
            new_task = desc != run.desc
            run.done, run.total, run.desc = done, total, desc
            self.moved(id(job), run, now, new_task)

    def record(self, run_key: str) -> None:
        with self.lock:
            self.finished += 1
            self.ended_here += 1
            job = self.by_key.pop(run_key, None)
            if job is not None and job in self.jobs and not any(v == job for v in self.by_key.values()):
                self.closed(job, self.jobs.pop(job))
            self.advanced(self.clock())

    # ---- the plan line -----------------------------------------------------------------------
    def _plan(self, run: _Run, now: float) -> None:
        if self.planned or run.first_task is None:
            return
        seconds, steps = run.first_task
        if steps <= 0:
            return
        tasks = _TASK.search(run.desc)
        run_left = seconds / steps * (run.total - steps)
        runs_left = max(0, self.runs - self.finished - 1)
        study_left = run_left + seconds / steps * run.total * runs_left / self.workers
        if max(run_left, study_left) < PLAN_SECONDS:
            return
        self.planned = True
        of = f"{tasks.group(2)} tasks, " if tasks else ""
        self.say(f"{run.label}: planned {of}{run.total:,} steps; the first task took {clock_text(seconds)} "
                 f"({steps:,} steps), so this run ends in about {clock_text(run_left)}"
                 + (f" and the study's {runs_left + 1} runs left in about {clock_text(study_left)}"
                    if runs_left else ""))

    # ---- what a display does -----------------------------------------------------------------
    def opened(self, job: int, run: _Run) -> None: ...

    def moved(self, job: int, run: _Run, now: float, new_task: bool) -> None: ...

    def closed(self, job: int, run: _Run) -> None: ...

    def advanced(self, now: float) -> None: ...

    def say(self, line: str) -> None: ...


class Lines(Watch):
    """Plain lines on ``out`` (stderr): for logs, CI and ``nohup``, where bars would print nothing."""

    def __init__(self, out: TextIO | None = None, every: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.out = out or sys.stderr
        if every is None:
            try:
                every = float(os.environ.get(EVERY_ENV, DEFAULT_EVERY))
            except ValueError:
                every = DEFAULT_EVERY
        self.every = every

    def say(self, line: str) -> None:
        print(f"[{clock_text(self.clock() - self.started)}] {line}", file=self.out, flush=True)

    def moved(self, job: int, run: _Run, now: float, new_task: bool) -> None:
        if run.desc == "loading data":
            if new_task:
                self.say(f"{run.label}: loading data")
            return
        if not new_task and now - run.reported < self.every:
            return
        run.reported = now
        pct = f" ({100 * run.done / run.total:.0f} %)" if run.total else ""
        eta = run.eta(now)
        self.say(f"{run.label}: {run.desc}, step {run.done:,}/{run.total:,}{pct}"
                 + (f", ETA {clock_text(eta)}" if eta is not None else ""))

    def advanced(self, now: float) -> None:
        left = self.runs - self.finished
        eta = (now - self.started) / self.ended_here * left if self.ended_here and left else None
        self.say(f"study: {self.finished}/{self.runs} runs finished"
                 + (f", ETA {clock_text(eta)}" if eta is not None else ""))


class Bars(Watch):
    """Rich bars in a terminal: the study's runs, and each job's steps, each with its ETA."""

    def __init__(self, bar, overall, **kwargs):
        super().__init__(**kwargs)
        self.bar, self.overall, self.tasks = bar, overall, {}

    def say(self, line: str) -> None:
        self.bar.console.print(line)

    def opened(self, job: int, run: _Run) -> None:
        self.tasks[job] = self.bar.add_task(run.label, total=None)

    def moved(self, job: int, run: _Run, now: float, new_task: bool) -> None:
        self.bar.update(self.tasks[job], completed=run.done, total=run.total or None,
                        description=f"{run.label}: {run.desc}")

    def closed(self, job: int, run: _Run) -> None:
        self.bar.remove_task(self.tasks.pop(job))

    def advanced(self, now: float) -> None:
        self.bar.advance(self.overall)


def make_bars():
    """A rich Progress with an ETA column (time remaining) beside the elapsed time."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from retain.cli.console import console

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False)


class announce_after:  # noqa: N801 - used as a context manager, like contextlib's
    """Print ``message`` (one line on stderr) if the block is still running after ``seconds``:
    a data set that takes a while to read says so, one that loads at once prints nothing."""

    def __init__(self, seconds: float, message: str, say=None):
        self.timer = threading.Timer(seconds, say or self._say, args=(message,))
        self.timer.daemon = True

    @staticmethod
    def _say(message: str) -> None:
        from retain.cli.console import console

        console.print(message)

    def __enter__(self) -> announce_after:
        self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.timer.cancel()
