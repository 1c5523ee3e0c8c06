"""Run a study with progress: in a terminal one bar for the study and one per job in flight
(in-process, a process pool's workers, an ensemble), each with its steps and ETA; otherwise
plain lines (retain.execution.reporters). On Ray the study bar advances as runs finish."""

from __future__ import annotations

import contextlib
from typing import Any

from retain.execution.executors import StudyOutcome, available_cores, make_executor, run_study


def auto_workers(runs: int, backend: str = "local") -> int:
    """``--workers auto``: a process per core, never more processes than runs to do."""
    if backend == "ray":
        return available_cores()
    return max(1, min(available_cores(), runs))


def run_with_progress(study, store, *, backend: str = "local", workers: int | None = None,
                      address: str | None = None, quiet: bool = False, checkpoint_dir: str | None = None,
                      threads: int | None = None, extra: dict[str, Any] | None = None,
                      loggers: tuple = (), batch_seeds: bool = False) -> StudyOutcome:
    """Run ``study`` (a :class:`retain.config.study_file.Study`) into ``store`` and show its progress.

    ``workers=None`` sizes the process pool to the cores (one run left: in this process, on
    every core); ``threads=None`` gives each run the cores the concurrent runs leave free."""
    from retain.cli.console import console

    keys = [c.key for c in study.configs]
    finished = {r.run_key for r in store.runs(run_key=keys)} if keys else set()
    already = len(finished)
    if already:
        console.print(f"{already} of {len(keys)} runs already finished in {store.path}; running the rest")
    if workers is None:  # runs on an accelerator share it one at a time (a process each would each hold a context)
        on_device = any(c.device != "cpu" for c in study.configs)
        jobs = len(keys) - already
        if batch_seeds:  # an ensemble is one job (retain.ensemble)
            from retain.ensemble import plan

            jobs = len(plan([c for c in study.configs if c.key not in finished], checkpoints=bool(checkpoint_dir))[0])
        workers = 1 if on_device and backend == "local" else auto_workers(jobs, backend)
    if threads is None and backend == "local" and already < len(keys):  # by the cores free now, recorded with why
        from retain.execution.threads import default_threads

        threads, why = default_threads(workers)  # not printed: how busy a machine is varies run to run
    else:
        why = f"--threads {threads} (given)" if threads is not None else "Ray: one CPU a task"
    extra = {**(extra or {}), "threads_choice": why}
    from retain.execution.reporters import Bars, Lines, make_bars

    sizes = {"runs": len(keys), "already": already, "workers": workers}
    bar = make_bars() if console.is_terminal and not quiet else None
    with bar if bar is not None else contextlib.nullcontext():
        if bar is not None:
            overall = bar.add_task(f"study {study.name}".strip(), total=len(keys), completed=already)
            watch = Bars(bar, overall, **sizes)
        else:  # a log file, a pipe, CI: plain lines (bars would print nothing until the end)
            watch = None if quiet else Lines(**sizes)
        executor = make_executor(backend, workers, address, progress=watch.step if watch else None,
                                 checkpoint_dir=checkpoint_dir, threads=threads, loggers=loggers)
        return run_study(study.configs, store, executor, study=study.name, extra=extra,
                         on_record=(lambda rec: watch.record(rec.run_key)) if watch else None,
                         batch_seeds=batch_seeds, on_note=lambda note: console.print(f"[yellow]note[/yellow]: {note}"))
