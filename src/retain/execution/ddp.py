"""Running a study data-parallel: ``retain run --ddp N`` starts N rank processes of the same command
on this machine (a free port on 127.0.0.1, as torchrun would); ``torchrun --nproc-per-node N -m
retain run ...`` starts them itself. Each rank joins the process group (gloo on the CPU, nccl on
CUDA, one device per local rank) and trains every run of the study together with the others
(:mod:`retain.distributed`).

Only rank 0 is the driver: it opens the store, decides which runs are still to do, tells the other
ranks (one broadcast), writes each record, prints the table and writes the report. The other ranks
compute and write nothing: no store, no summary, no report, no logger, no checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from retain import distributed
from retain.config.run import RunSpec
from retain.errors import ConfigError, DivergedError, RetainError

#: Set in each rank that ``--ddp`` starts: the launcher's pid, so a rank ends when it does.
PARENT_ENV = "RETAIN_DDP_PARENT"


def study_world(configs: list[RunSpec]) -> int:
    """The one world size of a study's runs (a study cannot mix them: its ranks run every run)."""
    sizes = sorted({c.ddp for c in configs})
    if len(sizes) > 1:
        raise ConfigError(f"ddp: a study's runs must all use the same number of ranks, got {sizes}")
    kinds = sorted({c.device.partition(":")[0] for c in configs})
    if sizes and sizes[0] > 1 and len(kinds) > 1:
        raise ConfigError(f"ddp: a data-parallel study runs on one kind of device, got {', '.join(kinds)}")
    return sizes[0] if sizes else 1


def check_execution(args: Any, world: int) -> None:
    """Refuse execution settings that cannot go with ``world`` ranks per run."""
    if args.workers not in (None, 1):
        raise ConfigError(f"--ddp {world} trains each run on {world} processes, one run at a time; it does not mix "
                          f"with --workers {args.workers}")
    if args.backend != "local":
        raise ConfigError(f"--ddp {world} runs on this machine's processes; it does not mix with --backend "
                          f"{args.backend}")
    if args.checkpoint_dir:
        raise ConfigError(f"--ddp {world}: --checkpoint-dir is not supported (each rank's replay buffer is its own, "
                          f"and only rank 0 writes files)")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the ranks meet there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_machine(configs: list[RunSpec], world: int) -> None:
    """Refuse more ranks than this machine has places for: each rank is a whole process with its
    own copy of the data and the model, so ranks beyond the CPU cores (or the GPUs) only multiply
    the memory and fight over the same cores. torchrun, which may spread ranks over machines, is
    not checked."""
    from retain.execution.executors import available_cores

    if configs and configs[0].device.startswith("cuda"):
        import torch

        gpus = torch.cuda.device_count()
        if world > gpus:
            raise ConfigError(f"--ddp {world}: one GPU a rank, and this machine has {gpus}; at most --ddp {gpus}")
        return
    cores = available_cores()
    if world > cores:
        raise ConfigError(f"--ddp {world}: {world} rank processes on the {cores} CPU core(s) retain may use here; "
                          f"each rank holds its own data and model and they would share the cores, so at most "
                          f"--ddp {cores} (torchrun places ranks on several machines)")


def _die_with_launcher() -> None:
    """In a rank, before it executes anything: the kernel kills it when the launcher dies (Linux
    PR_SET_PDEATHSIG), even during its imports, long before it could watch the launcher itself."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):  # not Linux: the rank watches the launcher once it runs (join)
        pass


def launch(argv: list[str], world: int) -> int:
    """Start ``world`` ranks of ``retain <argv>`` on this machine and wait for them; returns the
    first non-zero exit code (after ending the other ranks, which would wait for it forever), else 0.
    The ranks die with this process, however it ends (see _die_with_launcher)."""
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "WORLD_SIZE": str(world),
           "LOCAL_WORLD_SIZE": str(world), PARENT_ENV: str(os.getpid())}
    linux = sys.platform.startswith("linux")
    procs = [subprocess.Popen([sys.executable, "-m", "retain", *argv], env=env | {"RANK": str(r), "LOCAL_RANK": str(r)},
                              preexec_fn=_die_with_launcher if linux else None) for r in range(world)]
    try:
        while True:
            codes = [p.poll() for p in procs]
            failed = [c for c in codes if c not in (None, 0)]
            if failed or all(c == 0 for c in codes):
                return failed[0] if failed else 0
            time.sleep(0.05)
    finally:
        for p in procs:  # a rank that failed leaves the others waiting in a collective
            if p.poll() is None:
                p.kill()
            p.wait()


def join(configs: list[RunSpec], world: int) -> None:
    """Join the process group of this rank (environment from torchrun or :func:`launch`): gloo on the
    CPU, nccl on CUDA with this rank's own device."""
    import torch
    import torch.distributed as dist

    given = distributed.env_world()
    if given != world:
        raise ConfigError(f"ddp {world}: this process was started as one of {given} ranks; the run asks for {world}")
    if PARENT_ENV in os.environ:
        from retain.execution.lifetime import exit_with

        exit_with(int(os.environ[PARENT_ENV]))
    cuda = configs[0].device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(distributed.local_rank())
    try:
        dist.init_process_group("nccl" if cuda else "gloo", init_method="env://")
    except (RuntimeError, ValueError) as exc:  # DistNetworkError and DistStoreError are RuntimeErrors
        where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        taken = "EADDRINUSE" in str(exc) or "address already in use" in str(exc)
        hint = ("the port is taken: give torchrun another --master-port (or set MASTER_PORT)" if taken
                else "check MASTER_ADDR and MASTER_PORT and that every rank was started")
        raise ConfigError(f"ddp: rank {os.environ.get('RANK', '?')} cannot join the process group at {where} "
                          f"({reason}); {hint}") from None


def leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def on_rank_device(cfg: RunSpec) -> RunSpec:
    """``cfg`` on this rank's CUDA device (``cuda:LOCAL_RANK``); the key names only the device's type."""
    if cfg.device.startswith("cuda"):
        return dataclasses.replace(cfg, device=f"cuda:{distributed.local_rank()}")
    return cfg


def _broadcast_keys(keys: list[str] | None) -> list[str]:
    import torch.distributed as dist

    box = [keys]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class DataParallel:
    """Rank 0's executor: tells the other ranks which runs to do, then runs each in this process
    with them, with progress, probes and loggers (which only rank 0 has).

    A run that fails on rank 0 for any reason other than divergence (which every rank sees alike,
    its loss being a global mean) leaves the other ranks inside a collective: its record is kept and
    the study stops there."""

    name = "data-parallel"

    def __init__(self, progress=None, threads: int = 1, loggers: tuple = ()):
        self.progress, self.threads, self.loggers = progress, threads, loggers

    def map(self, configs: list[RunSpec], study: str) -> Iterator[dict]:
        import torch

        from retain.execution.execute import execute

        _broadcast_keys([c.key for c in configs])
        torch.set_num_threads(self.threads)
        for cfg in configs:
            report = (lambda d, t, s, _c=cfg: self.progress(_c, d, t, s)) if self.progress else None
            rec = execute(on_rank_device(cfg), study=study, progress=report, loggers=self.loggers)
            rec.extra["ddp"] = distributed.world_size()
            yield rec
            if rec.status == "failed" and not rec.error.startswith(DivergedError.__name__):
                raise RetainError(f"ddp: run {cfg.key} ({cfg.strategy} seed {cfg.seed}) failed on rank 0 "
                                  f"({rec.error}); the other ranks cannot go on, so the study stops here")


def follow(configs: list[RunSpec], threads: int) -> int:
    """What a rank other than 0 does: the runs rank 0 names, trained with it; its results are rank
    0's, so nothing is kept or written here. Returns the exit code."""
    import torch

    from retain.training.loop import run_experiment

    by_key = {c.key: c for c in configs}
    torch.set_num_threads(threads)
    for key in _broadcast_keys(None):
        try:
            run_experiment(on_rank_device(by_key[key]), after_task=[])
        except DivergedError:  # seen by every rank at once (a global loss): rank 0 records it
            continue
    return 0


def ddp_from_env(args: Any) -> None:
    """Under torchrun (or in a rank that ``--ddp`` started), a study given by flags takes the world
    size from the environment when ``--ddp`` does not give it (a study file must say ``ddp``)."""
    given = distributed.env_world()
    if given is not None and given > 1 and args.ddp is None and not args.study_file:
        args.ddp = given


def run_rank(args: Any, configs: list[RunSpec]) -> int | None:
    """The data-parallel part of ``retain run``: None to go on as usual (no --ddp, or this is rank 0
    inside the group, which drives the study); otherwise the exit code of this process (the
    launcher after its ranks ended, or a rank other than 0 after the study)."""
    world = study_world(configs)
    if world == 1:
        given = distributed.env_world() or 1
        if given > 1:  # each process would run the whole study and write the store
            raise ConfigError(f"ddp: this process is one of {given} ranks (torchrun) but the study's runs have "
                              f"ddp = 1; set ddp = {given} in the study file's [settings]")
        return None
    check_execution(args, world)
    if distributed.env_world() is None:
        check_machine(configs, world)
        return launch(args.argv, world)
    join(configs, world)
    import atexit

    atexit.register(leave)
    from retain.execution.executors import available_cores

    args.workers = 1
    args.threads = args.threads or max(1, available_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    if distributed.rank() > 0:
        return follow(configs, args.threads)
    return None
