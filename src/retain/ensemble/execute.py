"""Run one :class:`~retain.ensemble.support.Ensemble` and turn each member into the RunRecord its
sequential run would give (the same key; ``extra.batched`` says it was trained in an ensemble)."""

from __future__ import annotations

import contextlib
import time

from retain.config.run import RunSpec
from retain.ensemble.loop import NotBatchable, run_ensemble
from retain.ensemble.support import Ensemble
from retain.store.record import RunRecord
from retain.training.loop import Progress, RunResult


def execute_ensemble(job: Ensemble, *, study: str = "", progress: Progress | None = None,
                     loggers: tuple = ()) -> list[RunRecord]:
    """Train ``job``'s members together and return their records, finished or failed (never
    raises for a failing run, like :func:`retain.execution.execute.execute`). When the built
    members cannot step together (:class:`NotBatchable`) they run one by one and their records
    say why in ``extra.batch_fallback``."""
    from retain.diagnostics.probes import make_probe_hooks
    from retain.errors import RetainError
    from retain.execution.execute import _run_loggers, execute, failed_record, finished_record

    cfgs = list(job.members)
    started = time.time()
    with contextlib.ExitStack() as stack:
        groups = [stack.enter_context(_run_loggers(cfg, study, loggers)) for cfg in cfgs]
        by_key = {cfg.key: group for cfg, group in zip(cfgs, groups)}
        hooks = lambda cfg: [*make_probe_hooks(), *([by_key[cfg.key]] if by_key[cfg.key] else [])]  # noqa: E731
        try:
            outcomes = run_ensemble(cfgs, progress=progress, hooks=hooks)
        except NotBatchable as exc:
            stack.close()  # each sequential run opens its own loggers
            return _one_by_one(cfgs, str(exc), study, progress, loggers, execute)
        except RetainError:
            raise
        except Exception as exc:  # noqa: BLE001 - every member is recorded as failed
            outcomes = [exc] * len(cfgs)
        records = []
        for cfg, outcome, group in zip(cfgs, outcomes, groups):
            if isinstance(outcome, RunResult):
                rec = finished_record(outcome, study=study, started_at=started)
                if group:
                    group.end("finished", outcome.metrics)
            else:
                rec = _failed(cfg, outcome, study, started, failed_record)
                if group:
                    group.end("failed", {})
            rec.extra["batched"] = {"members": len(cfgs), "seeds": [c.seed for c in cfgs],
                                    "orders": [c.order for c in cfgs]}
            if group and group.errors:
                rec.extra["logger_errors"] = group.errors
            records.append(rec)
    return records


def _failed(cfg: RunSpec, exc: Exception, study: str, started: float, failed_record) -> RunRecord:
    try:  # failed_record reads the traceback of the exception being handled
        raise exc
    except Exception as err:  # noqa: BLE001
        return failed_record(cfg, err, study=study, started_at=started)


def _one_by_one(cfgs: list[RunSpec], why: str, study: str, progress: Progress | None, loggers: tuple,
                execute) -> list[RunRecord]:
    records = []
    for cfg in cfgs:
        rec = execute(cfg, study=study, progress=progress, loggers=loggers)
        rec.extra["batch_fallback"] = why
        records.append(rec)
    return records
