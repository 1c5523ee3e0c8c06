"""Executors: run a study's configs in-process, in a local process pool or on Ray, and stream the
records back as runs finish. Workers only compute and return records (retain.execution.execute.execute);
the driver (:func:`run_study`) is the one process that writes the SQLite store, so no two
processes ever write it at once. A run whose key is finished in the store is not run again.
Workers and a local Ray end with the driver, however it ends (retain.execution.lifetime)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from retain.config.run import RunConfig, RunSpec, as_spec
from retain.errors import ConfigError
from retain.execution.lifetime import Reaper, exit_with

Record = dict[str, Any]
#: Called by the in-process executor with (config, steps done, steps total, description).
RunProgress = Callable[[RunSpec, int, int, str], None]


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def threads_per_run(runs_at_once: int, cores: int | None = None) -> int:
    """Torch threads for each of ``runs_at_once`` concurrent runs: the cores they leave free,
    shared evenly (more threads than cores per run would only fight over them)."""
    return max(1, (cores or available_cores()) // max(1, runs_at_once))


def plugin_sources(configs: list[RunSpec]) -> tuple:
    """Every plugin module the runs use (one entry per module), for the workers to load."""
    from retain.plugins import loaded_files

    found = {src.module: src for src in loaded_files()} | {src.module: src for c in configs for src in c.plugins}
    return tuple(found[k] for k in sorted(found))


#: In a pool worker: the queue its runs' progress goes back to the driver on (None: not asked for).
_PROGRESS: Any = None


def _worker_init(threads: int = 1, driver: int | None = None, plugins: tuple = (), progress: Any = None) -> None:
    import torch

    from retain.plugins import ensure

    global _PROGRESS
    _PROGRESS = progress
    ensure(plugins)  # the runs' plugin code, before any run needs its names

    # Workers split the cores between them: see threads_per_run.
    torch.set_num_threads(threads)
    if driver is not None:
        exit_with(driver)  # a worker outliving its driver would run for nobody


def _execute(cfg: RunSpec, study: str, checkpoint_dir: str | None = None, loggers: tuple = (),
             job: int | None = None) -> Record | list[Record]:
    from retain.execution.execute import execute

    queue = _PROGRESS if job is not None else None
    progress = (lambda done, total, desc: queue.put((job, done, total, desc))) if queue is not None else None
    if not isinstance(cfg, RunSpec):  # an ensemble of runs trained together (retain.ensemble): a record each
        from retain.ensemble.execute import execute_ensemble

        return execute_ensemble(cfg, study=study, loggers=loggers, progress=progress)

    kwargs = {"checkpoint_dir": checkpoint_dir} if checkpoint_dir else {}
    return execute(cfg, study=study, loggers=loggers, progress=progress, **kwargs)


class _Relay:
    """The driver's side of a pool's progress: a thread that passes each worker's report
    ``(job, done, total, description)`` to ``progress`` with the job it is about."""

    def __init__(self, queue: Any, jobs: list, progress: RunProgress):
        self.queue, self.jobs, self.progress = queue, jobs, progress
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="retain-progress-relay", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import queue as queues

        while not self.stopped.is_set():
            try:
                job, done, total, desc = self.queue.get(timeout=0.2)
            except queues.Empty:
                continue
            except (EOFError, OSError, ValueError):  # the pool is gone
                return
            try:
                self.progress(self.jobs[job], done, total, desc)
            except Exception:  # noqa: BLE001 - a display must never stop the study
                pass

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=1)


class InProcess:
    """Runs one config after another in this process (the default), with per-run progress.

    Runs use ``threads`` torch threads (one run at a time: by default every core). A run gives
    bit-identical numbers wherever it executes with the same thread count; a different count
    changes the float summation order, so each record keeps its thread count."""

    name = "in-process"

    def __init__(self, progress: RunProgress | None = None, checkpoint_dir: str | None = None,
                 threads: int = 1, loggers: tuple = ()):
        self.progress, self.checkpoint_dir, self.threads = progress, checkpoint_dir, threads
        self.loggers = loggers  # LoggerSpecs: each run creates its own loggers (retain.loggers)

    def map(self, configs: list[RunSpec], study: str) -> Iterator[Record]:
        from retain.execution.execute import execute

        kwargs = {"checkpoint_dir": self.checkpoint_dir} if self.checkpoint_dir else {}
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            for cfg in configs:
                report = (lambda d, t, s, _c=cfg: self.progress(_c, d, t, s)) if self.progress else None
                if isinstance(cfg, RunSpec):
                    yield execute(cfg, study=study, progress=report, loggers=self.loggers, **kwargs)
                else:  # an ensemble (retain.ensemble): one record per member
                    from retain.ensemble.execute import execute_ensemble

                    yield from execute_ensemble(cfg, study=study, progress=report, loggers=self.loggers)
        finally:
            torch.set_num_threads(threads)


class ProcessPool:
    """A local pool of ``workers`` processes (forkserver: no copied torch threads or locks)."""

    name = "process pool"

    def __init__(self, workers: int, checkpoint_dir: str | None = None, threads: int = 1, loggers: tuple = (),
                 progress: RunProgress | None = None):
        if workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {workers}")
        self.workers, self.checkpoint_dir, self.threads = workers, checkpoint_dir, threads
        self.loggers = loggers  # picklable specs; the loggers are made in the worker
        self.progress = progress  # called in the driver with each worker's reports (see _Relay)

    def map(self, configs: list[RunSpec], study: str) -> Iterator[Record]:
        ctx = multiprocessing.get_context("forkserver")
        # The fork server imports torch and retain once; each worker forks from it instead of
        # paying that import again (seconds per worker on a busy machine).
        ctx.set_forkserver_preload(["retain.execution.execute", "retain.strategies", "retain.benchmarks"])
        queue = ctx.Queue() if self.progress else None
        relay = _Relay(queue, list(configs), self.progress) if queue is not None else None
        with ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_worker_init,
                                 initargs=(self.threads, os.getpid(), plugin_sources(configs), queue)) as pool:
            try:
                with _sigint_held():  # submit starts the workers: see _sigint_held
                    pending = {pool.submit(_execute, c, study, self.checkpoint_dir, self.loggers,
                                           i if queue is not None else None) for i, c in enumerate(configs)}
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        yield from _records(fut.result())
            except BaseException:
                # Ctrl-C, or the caller stopped reading: the runs in flight would be recorded by
                # nobody, so end the workers now rather than wait for them in shutdown(). The
                # futures are left to the pool's own thread, which fails them all once it sees its
                # workers gone: one cancelled here meanwhile would make that thread raise
                # InvalidStateError on stderr (Python < 3.12 sets the failure on every future).
                for proc in list((getattr(pool, "_processes", None) or {}).values()):
                    proc.kill()
                raise
            finally:
                if relay is not None:
                    relay.stop()


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) that arrives in the block and raise it as KeyboardInterrupt when
    the block ends. A pool starts a worker by sending the fork server the worker's pickled state,
    named semaphores included, then waits for its pid (seconds while the fork server still
    imports torch). Interrupted in that wait, the driver would exit and remove the semaphores
    while the fork server goes on to fork a worker it no longer knows, which then fails to open
    them and prints a FileNotFoundError traceback. Held, the interrupt comes once every worker
    started has its pid, so the driver can kill them all. Only where Python's own handler is
    installed, in the main thread (elsewhere signals cannot be handled)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


#: Set (to anything) to see Ray's own INFO and WARNING lines, which retain hides by default.
RAY_LOGS_ENV = "RETAIN_RAY_LOGS"
#: Seconds to wait for a Ray cluster given with --address to accept a connection.
RAY_CONNECT_SECONDS = 5


def check_ray_address(address: str) -> None:
    """Refuse ``--address HOST:PORT`` (a cluster's GCS, default port 6379) or ``ray://HOST:PORT``
    (Ray Client, default 10001) where nothing accepts a TCP connection within RAY_CONNECT_SECONDS:
    ``ray.init`` would retry for minutes, printing Ray's log lines. ``auto`` and ``local`` are
    Ray's to find."""
    import socket

    if address in ("auto", "local"):
        return
    client = address.startswith("ray://")
    host, _, port_text = address.removeprefix("ray://").partition("/")[0].rpartition(":")
    if not host:  # no port given
        host, port_text = port_text, ""
    try:
        port = int(port_text) if port_text else (10001 if client else 6379)
    except ValueError:
        raise ConfigError(f"--address {address}: expected HOST:PORT or ray://HOST:PORT") from None
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=RAY_CONNECT_SECONDS):
            pass
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        raise ConfigError(f"--address {address}: no Ray cluster answers at {host}:{port} ({reason}; waited up to "
                          f"{RAY_CONNECT_SECONDS} s); start one there (`ray start --head`) or leave out --address "
                          "for a local Ray") from None


class Ray:
    """Ray tasks, one CPU each, on the cluster at ``address`` or on a local Ray with ``num_cpus``.

    Ray is imported here only, so it stays an optional extra (``pip install retain[ray]``)."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int = 2, checkpoint_dir: str | None = None,
                 loggers: tuple = ()):
        self.address, self.num_cpus, self.checkpoint_dir = address, num_cpus, checkpoint_dir
        self.loggers = loggers

    def map(self, configs: list[RunSpec], study: str) -> Iterator[Record]:
        if self.address:
            check_ray_address(self.address)
        quiet = not os.environ.get(RAY_LOGS_ENV)  # Ray's Python logger: errors only
        try:
            import ray
        except ImportError:
            raise ConfigError("--backend ray needs Ray: pip install 'retain[ray]'") from None
        started = not ray.is_initialized()
        reaper = Reaper() if started and not self.address else None  # a local Ray ends with us
        try:
            if started:
                import logging

                kwargs = {"address": self.address} if self.address else {"num_cpus": self.num_cpus}
                try:
                    ray.init(include_dashboard=False, log_to_driver=False,
                             logging_level=logging.ERROR if quiet else logging.INFO, **kwargs)
                except ConnectionError as exc:  # e.g. --address auto with no cluster running here
                    raise ConfigError(f"--address {self.address}: cannot connect to a Ray cluster "
                                      f"({str(exc).splitlines()[0]})") from None
            remote = ray.remote(num_cpus=1, max_retries=0)(_ray_task)
            plugins = plugin_sources(configs)
            pending = [remote.remote(c, study, self.checkpoint_dir, self.loggers, plugins) for c in configs]
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                yield from _records(ray.get(done[0]))
        finally:
            if started:
                ray.shutdown()
            if reaper:
                reaper.close()


def _records(outcome: Record | list[Record]) -> list[Record]:
    return outcome if isinstance(outcome, list) else [outcome]


def _ray_task(cfg: RunSpec, study: str, checkpoint_dir: str | None, loggers: tuple = (),
              plugins: tuple = ()) -> Record:
    _worker_init(plugins=plugins)
    return _execute(cfg, study, checkpoint_dir, loggers)


def make_executor(backend: str = "local", workers: int = 1, address: str | None = None,
                  progress: RunProgress | None = None, checkpoint_dir: str | None = None,
                  threads: int | None = None, loggers: tuple = ()):
    """``local`` with 1 worker runs in-process; with more, a process pool; ``ray`` uses Ray
    (a local Ray gets ``max(workers, 2)`` CPUs when no ``address`` is given). ``threads``: torch
    threads per run (default: the cores shared by the runs at once, see threads_per_run).
    ``loggers``: :class:`retain.loggers.LoggerSpec` s, made into loggers where each run executes."""
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}")
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if backend == "ray":
        return Ray(address=address, num_cpus=max(workers, 2), checkpoint_dir=checkpoint_dir, loggers=loggers)
    if backend != "local":
        raise ConfigError(f"--backend must be 'local' or 'ray', got {backend!r}")
    if address:
        raise ConfigError("--address is for --backend ray")
    threads = threads or threads_per_run(workers)
    from retain import distributed

    if distributed.world_size() > 1:  # rank 0 of a data-parallel study (retain.execution.ddp)
        from retain.execution.ddp import DataParallel

        return DataParallel(progress, threads, loggers)
    if workers == 1:
        return InProcess(progress, checkpoint_dir, threads, loggers)
    return ProcessPool(workers, checkpoint_dir, threads, loggers, progress)


@dataclass
class StudyOutcome:
    """What a study run left: every record of its configs (reused and new) and the counts."""

    records: list[Record]
    reused: int
    ran: int


def run_study(configs: list[RunSpec | RunConfig], store, executor, *, study: str = "",
              extra: dict[str, Any] | None = None,
              on_record: Callable[[Record], None] | None = None, batch_seeds: bool = False,
              on_note: Callable[[str], None] | None = None) -> StudyOutcome:
    """Run the configs not yet finished in ``store`` on ``executor``; save each record as it
    arrives (one transaction per run, so a kill loses at most the runs in flight).

    ``extra`` is merged into each new record's ``extra`` (the command that reproduces it).
    ``batch_seeds``: runs that differ only in seed and order train as one ensemble where they can
    (:mod:`retain.ensemble`); ``on_note`` hears, once each, why others go one by one."""
    configs = [as_spec(c) for c in configs]  # RunConfigs from the Python API are resolved here, once
    done = {r.run_key: r for r in store.runs(run_key=[c.key for c in configs])} if configs else {}
    todo = [c for c in configs if c.key not in done]
    by_key = dict(done)
    jobs = todo
    if batch_seeds:
        from retain.ensemble import plan

        jobs, notes = plan(todo, checkpoints=bool(getattr(executor, "checkpoint_dir", None)))
        for note in notes if on_note else ():
            on_note(note)
    for rec in executor.map(jobs, study):
        rec.extra = {**(rec.extra or {}), **(extra or {})}
        store.save_run(rec)
        by_key[rec.run_key] = rec
        if on_record:
            on_record(rec)
    records = [by_key[c.key] for c in configs if c.key in by_key]
    return StudyOutcome(records, reused=len(done), ran=len(todo))
