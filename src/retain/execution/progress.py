"""Run a study with progress bars: one overall bar for the study and, in-process, one for the
current run; with workers (process pool, Ray) the overall bar advances as runs finish, in the
order they finish."""

from __future__ import annotations

from typing import Any

from retain.config.run import RunSpec
from retain.execution.executors import Record, StudyOutcome, available_cores, make_executor, run_study


def _label(cfg: RunSpec) -> str:
    return f"{cfg.strategy} seed {cfg.seed} order {cfg.order}"


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
    from retain.cli.console import console, make_progress

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
    with make_progress() as bar:
        bar.disable = quiet
        overall = bar.add_task(f"study {study.name}".strip(), total=len(keys), completed=already)
        current: dict[str, Any] = {}

        def on_step(cfg: RunSpec, done: int, total: int, desc: str) -> None:
            if current.get("key") != id(cfg):
                if "task" in current:
                    bar.remove_task(current["task"])
                current.update(key=id(cfg), task=bar.add_task(_label(cfg), total=total))
            bar.update(current["task"], completed=done, total=total, description=f"{_label(cfg)}: {desc}")

        def on_record(_: Record) -> None:
            if "task" in current:
                bar.remove_task(current.pop("task"))
                current.pop("key", None)
            bar.advance(overall)

        executor = make_executor(backend, workers, address, progress=on_step, checkpoint_dir=checkpoint_dir,
                                 threads=threads, loggers=loggers)
        return run_study(study.configs, store, executor, study=study.name, extra=extra, on_record=on_record,
                         batch_seeds=batch_seeds, on_note=lambda note: console.print(f"[yellow]note[/yellow]: {note}"))
