"""Run one resolved run and turn it (finished or failed) into its :class:`~retain.store.record.RunRecord`."""

from __future__ import annotations

import contextlib
import dataclasses
import time
import traceback

from retain.config.run import RunConfig, RunSpec, as_spec
from retain.errors import DivergedError
from retain.execution.environment import revision, versions
from retain.store.record import RunRecord
from retain.training.loop import Progress, RunResult, run_experiment


def _threads() -> int:
    """The torch thread count the run used: numbers are bit-identical only for the same count."""
    import torch

    return torch.get_num_threads()


def finished_record(result: RunResult, *, study: str, started_at: float) -> RunRecord:
    cfg = result.config
    kept = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)
            if f.name not in ("config", "key", "stats", "peak_mem_source", "scenario", "device",
                              "peak_device_mem_mb")}
    return RunRecord(
        run_key=result.key, study=study, benchmark=cfg.benchmark, strategy=cfg.strategy, seed=cfg.seed,
        config=cfg.resolved, versions=versions(), revision=revision(), status="finished",
        started_at=started_at, finished_at=time.time(), **kept,
        extra={"stats": result.stats, "order": cfg.order, "threads": _threads(), "scenario": result.scenario,
               "peak_mem_source": result.peak_mem_source, "device": result.device}
        | ({"peak_device_mem_mb": result.peak_device_mem_mb} if result.peak_device_mem_mb is not None else {}),
    )


def failed_record(cfg: RunSpec, exc: BaseException, *, study: str, started_at: float) -> RunRecord:
    return RunRecord(
        run_key=cfg.key, study=study, benchmark=cfg.benchmark, strategy=cfg.strategy, seed=cfg.seed,
        task_order=[], config=cfg.resolved, versions=versions(), revision=revision(), status="failed",
        error=f"{exc.__class__.__name__}: {exc}", started_at=started_at, finished_at=time.time(),
        extra={"traceback": traceback.format_exc(limit=8), "order": cfg.order, "threads": _threads()},
        events=[{"task": exc.task, "kind": "diverged", "message": str(exc)}] if isinstance(exc, DivergedError) else [],
    )


def execute(cfg: RunSpec | RunConfig, *, study: str = "", progress: Progress | None = None,
            after_task=None, checkpoint_dir=None, loggers=()) -> RunRecord:
    """Run ``cfg`` and return its record; a failing run returns a failed record (never raises,
    except for bad input, which is refused before anything runs). A RunConfig from the Python
    API is resolved here, once; studies pass RunSpecs. ``loggers``: specs
    (:class:`retain.loggers.LoggerSpec`) of the trackers to create here and send the run to."""
    cfg = as_spec(cfg)
    started = time.time()
    if after_task is None:  # diagnostics probes are on by default: about 0.02 s a task (retain.diagnostics.probes)
        from retain.diagnostics.probes import make_probe_hooks

        after_task = make_probe_hooks()
    with _run_loggers(cfg, study, loggers) as group:
        try:
            result = run_experiment(cfg, progress=progress, after_task=[*after_task, *([group] if group else [])],
                                    checkpoint_dir=checkpoint_dir)
        except Exception as exc:  # noqa: BLE001 - recorded as a failed run
            from retain.errors import RetainError

            if isinstance(exc, RetainError):
                raise
            rec = failed_record(cfg, exc, study=study, started_at=started)
            if group:
                group.end("failed", {})
        else:
            rec = finished_record(result, study=study, started_at=started)
            if group:
                group.end("finished", result.metrics)
    if group and group.errors:  # the run went on without the logger; the record says so
        rec.extra["logger_errors"] = group.errors
    return rec


def _run_loggers(cfg: RunSpec, study: str, specs):
    """The run's loggers (a context manager that closes them), or a null context without any."""
    if not specs:
        return contextlib.nullcontext()
    from retain.loggers import RunInfo, RunLoggers

    info = RunInfo(key=cfg.key, strategy=cfg.strategy, benchmark=cfg.benchmark, seed=cfg.seed, order=cfg.order,
                   config=cfg.resolved, study=study)
    return RunLoggers(specs, info)
