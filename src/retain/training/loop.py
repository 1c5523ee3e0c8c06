"""The run loop for one config: stream tasks, let the strategy observe batches, evaluate every
task after each one, and return the accuracy matrix with timings. Fits on a screen on purpose."""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from retain import distributed
from retain.benchmarks import make_benchmark
from retain.benchmarks.base import Benchmark, Experience, TrainBatch, bucketed, gather_train
from retain.benchmarks.blur import blurred_batches
from retain.config.run import RunConfig, RunSpec, as_spec
from retain.errors import ConfigError, DivergedError
from retain.metrics.matrix import average_accuracy, summarize
from retain.models import BACKBONES
from retain.plasticity import make_plasticity
from retain.strategies import Strategy
from retain.training.checkpoint import Checkpointer
from retain.training.device import DeviceMemory, deterministic_algorithms, device_name, experience_on
from retain.training.evaluation import evaluate_all
from retain.training.peak_memory import PeakMemory
from retain.training.ticker import Ticker

Progress = Callable[[int, int, str], None]  # (steps done, steps total, description)


@dataclass
class RunResult:
    config: RunSpec
    key: str
    acc_matrix: list[list[float]]
    baseline: list[float]
    metrics: dict[str, float]
    task_seconds: list[float]
    eval_seconds: list[float]
    losses: list[float | None]  # mean training loss per task; None where nothing was trained
    wall_seconds: float
    peak_mem_mb: float  # peak resident memory in MiB; see peak_mem_source for its scope
    trainable_params: int
    task_order: list[int]
    stats: list[dict[str, Any]] = field(default_factory=list)
    probes: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    #: "vmhwm-run": the peak of this run (Linux); "ru_maxrss-process": the process's peak so far,
    #: which includes earlier runs in the same process (see retain.training.peak_memory).
    peak_mem_source: str = ""
    scenario: str = ""  # the scenario the benchmark used (a config may leave it to the benchmark)
    device: str = "cpu"  # where it ran, with the accelerator's name: "cuda:0 (NVIDIA H200)"
    peak_device_mem_mb: float | None = None  # peak memory torch allocated on a CUDA device; None elsewhere


@dataclass
class RunContext:
    """What after-task hooks (probes, checkpoints) can see."""

    config: RunSpec
    benchmark: Benchmark
    strategy: Strategy
    task: int
    acc_matrix: list[list[float]]
    result: RunResult | None = None
    step_losses: list[float] = field(default_factory=list)  # this task's training loss per optimiser step
    first_step: int = 1  # the run-wide number of the step of step_losses[0] (counted from 1)


def param_groups(params, lr: float) -> list[dict[str, Any]] | list[torch.nn.Parameter]:
    """``params`` as they are, or, when a backbone gave some of them an ``lr_scale`` (a pretrained
    encoder's new head: :class:`retain.models.text.TextEncoder`), one group per scale at ``lr * scale``."""
    params = list(params)
    scales = [float(getattr(p, "lr_scale", 1.0)) for p in params]
    if all(s == 1.0 for s in scales):
        return params
    return [{"params": [p for p, s in zip(params, scales) if s == k], "lr": lr * k} for k in sorted(set(scales))]


def make_optimizer_factory(cfg: RunSpec):
    if cfg.optimizer == "sgd":
        return lambda params: torch.optim.SGD(param_groups(params, cfg.lr), lr=cfg.lr)
    return lambda params: torch.optim.Adam(param_groups(params, cfg.lr), lr=cfg.lr)


def build(cfg: RunSpec | RunConfig, *, check: bool = False) -> tuple[Benchmark, Strategy]:
    """Benchmark (in the run's task order), model and strategy for ``cfg``, all seeded. ``check``:
    also refuse what only the built benchmark can judge (a study checked that before its runs;
    a RunConfig from the Python API is resolved and checked here)."""
    check = check or not isinstance(cfg, RunSpec)
    cfg = as_spec(cfg)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)  # strategies may draw from Python's or numpy's generator too
    np.random.seed(cfg.seed)
    bench = make_benchmark(cfg.benchmark, tasks=cfg.tasks, seed=cfg.seed, scenario=cfg.scenario,
                           data_dir=cfg.data_dir, **cfg.benchmark_options).with_order(cfg.order)
    if check:
        cfg.check_fits(bench)
    factory = BACKBONES.get(cfg.backbone)
    kwargs = {"hidden": cfg.hidden} if cfg.backbone == "mlp" else {}
    kwargs.update(cfg.backbone_options)
    model = factory(bench.input_shape, bench.num_classes, **kwargs)
    cls = cfg.strategy_class
    if cfg.task_free and cls.needs_boundaries:
        raise ConfigError(f"strategy {cfg.strategy!r} needs task boundaries and cannot run task-free")
    # device and amp only when set, so a plugin strategy whose __init__ predates them still builds on the CPU
    placement = {k: v for k, v in (("device", cfg.device), ("amp", cfg.amp)) if v not in ("cpu", None)}
    strategy = cls(model, cfg.strategy_config(), make_optimizer=make_optimizer_factory(cfg),
                   num_classes=bench.num_classes, **placement)
    return bench, strategy


def iter_batches(exps: list[Experience], batch_size: int, gen: torch.Generator) -> Iterator[TrainBatch]:
    """Shuffled batches over the union of ``exps``; each sample gets its own task's transform. In a
    data-parallel run, this rank's piece of each global batch (the same global order on every rank)."""
    if len(exps) == 1:  # the order is drawn on the CPU (same numbers on every device), used where the data is
        perm = torch.randperm(exps[0].num_train, generator=gen)
        if exps[0].lengths is not None:  # text: batches of similar lengths, little padding
            perm = bucketed(perm, exps[0].lengths, batch_size, gen)
        perm = perm.to(exps[0].train_x.device, non_blocking=True)
        for i in range(0, len(perm), batch_size):
            yield gather_train([(exps[0], distributed.shard(perm[i: i + batch_size]))])
        return
    sizes = torch.tensor([e.num_train for e in exps])
    owner = torch.repeat_interleave(torch.arange(len(exps)), sizes)
    local = torch.cat([torch.arange(n) for n in sizes.tolist()])
    perm = torch.randperm(len(owner), generator=gen)
    if all(e.lengths is not None for e in exps):
        perm = bucketed(perm, torch.cat([e.lengths for e in exps]), batch_size, gen)
    for i in range(0, len(perm), batch_size):
        sel = distributed.shard(perm[i: i + batch_size])
        yield gather_train([(exps[k], local[sel[owner[sel] == k]]) for k in owner[sel].unique().tolist()])


def training_sets(strategy: Strategy, exps: list[Experience]) -> list[list[Experience]]:
    """What each task trains on; empty for the tasks a train-once method (joint) skips."""
    last = len(exps) - 1
    return [strategy.training_experiences(exps[: t + 1]) if not strategy.trains_once or t == last else []
            for t in range(len(exps))]


def train_task(cfg: RunSpec, strategy: Strategy, exps: list[Experience], t: int, train_on: list[Experience],
               gen: torch.Generator, plastic, steps: int, on_epoch: Callable[[], None],
               step_losses: list[float] | None = None, on_step: Callable[[int], None] | None = None) -> float:
    """``cfg.epochs`` passes over ``train_on`` as task ``t``; returns the mean observed loss and
    puts each step's loss in ``step_losses`` (read from the device once, at the end of the task).
    On an accelerator the tasks trained on move there first, once for the task (storage dtype)."""
    moved: dict[int, Any] = {}  # this task's device copies; freed when the task ends
    on_device = lambda e: experience_on(e, strategy.device, moved)  # noqa: E731 - the identity on the CPU
    exps = [on_device(e) if e in train_on or (cfg.blur > 0 and i in (t, t + 1)) else e for i, e in enumerate(exps)]
    train_on = [on_device(e) for e in train_on]
    exp = exps[t]
    grow = getattr(strategy.model, "grow_head", None)  # a head that grows with the classes (retain.models.text)
    if callable(grow):
        grow(sorted({c for e in train_on for c in e.classes}))
    strategy.set_augmentation(exp.augment)  # before every task, task-free too (no begin_task there)
    if not cfg.task_free:
        strategy.begin_task(exp)
    if plastic:
        plastic.begin_task(t, exp, steps)
    loss_sum, n_steps, losses = torch.zeros((), device=strategy.device), 0, []
    for epoch in range(cfg.epochs):
        batches = (blurred_batches(exps, t, cfg.blur, cfg.seed, cfg.batch_size, gen)
                   if cfg.blur > 0 and len(train_on) == 1 else iter_batches(train_on, cfg.batch_size, gen))
        for x, y, plain in batches:
            loss = strategy.observe(x, y, exp.task_id, plain=plain)["loss"]
            loss_sum += loss
            losses.append(torch.as_tensor(loss).detach())  # no .item(): the loop never waits on the device
            if plastic:
                plastic.after_step(x)
            n_steps += 1
            if on_step:
                on_step(n_steps)  # progress within the task (throttled: retain.training.ticker)
        if not torch.isfinite(distributed.mean(loss_sum)):  # every rank decides alike
            raise DivergedError(f"loss became non-finite in task {t + 1}, epoch {epoch + 1} with lr {cfg.lr}; "
                                "lower --lr", task=t)
        on_epoch()
    if plastic:  # before end_task, so a strategy's anchor (EWC) sees the consolidated weights
        plastic.end_task(t)
    distributed.average_buffers(strategy.model)  # data-parallel: one set of batch-norm statistics
    if not cfg.task_free:
        strategy.end_task(exp)
    if step_losses is not None and losses:
        step_losses.extend(distributed.mean(torch.stack(losses)).tolist())  # the global batches' losses
    return float(distributed.mean(loss_sum)) / max(n_steps, 1)


def run_experiment(cfg: RunSpec | RunConfig, *, progress: Progress | None = None,
                   after_task: list[Callable[[RunContext], None]] | None = None,
                   checkpoint_dir: str | Path | None = None) -> RunResult:
    """Train ``cfg.strategy`` on ``cfg.benchmark`` and return the accuracy matrix and costs.

    With ``checkpoint_dir`` the run saves its state after every task and, when started again
    after a crash, resumes from the last saved task (see :mod:`retain.training.checkpoint`).

    A train-once strategy (``Strategy.trains_once``: joint training) trains nothing before the
    last task; there the model goes back to this run's initial weights and trains on every task's
    data. Its metrics hold only ``avg_acc``: the earlier rows are of an untrained model, so
    forgetting, BWT, FWT and learning accuracy would mean nothing."""
    t_start = time.perf_counter()
    memory = PeakMemory()
    memory.start()
    given = cfg
    cfg = as_spec(cfg)  # a RunConfig from the Python API is resolved here, once
    with deterministic_algorithms(cfg.deterministic, cfg.device):
        return _run(cfg, given, t_start, memory, progress, after_task, checkpoint_dir)


def _run(cfg: RunSpec, given: RunSpec | RunConfig, t_start: float, memory: PeakMemory, progress: Progress | None,
         after_task: list[Callable[[RunContext], None]] | None, checkpoint_dir: str | Path | None) -> RunResult:
    device_memory = DeviceMemory(cfg.device)
    device_memory.start()
    if cfg.ddp != distributed.world_size():
        raise ConfigError(f"ddp {cfg.ddp}: this process is one of {distributed.world_size()} rank(s); a data-parallel "
                          f"run starts through `retain run --ddp N` or torchrun")
    if progress:
        progress(0, 0, "loading data")  # building the benchmark may read and decode files for a while
    bench, strategy = build(cfg, check=cfg is not given)
    distributed.broadcast_model(strategy.model)  # data-parallel: rank 0's initial weights everywhere
    initial = copy.deepcopy(strategy.model.state_dict()) if strategy.trains_once else None
    plastic = make_plasticity(cfg.plasticity_config(), strategy, cfg.seed)  # None unless a fix is enabled
    exps, task_il = bench.experiences, bench.scenario == "task-il"
    transforms: dict[int, Any] = {}  # the transforms' device copies (test sets go over by batch)
    tested = [experience_on(e, strategy.device, transforms, train=False) for e in exps]
    evaluate = lambda: evaluate_all(strategy.model, tested, task_il=task_il, num_classes=bench.num_classes)
    baseline = evaluate()
    gen = torch.Generator().manual_seed(cfg.seed)
    sets = training_sets(strategy, exps)
    steps_per_task = [cfg.epochs * -(-sum(e.num_train for e in s) // cfg.batch_size) for s in sets]
    total = sum(steps_per_task)
    result = RunResult(cfg, cfg.key, [], baseline, {}, [], [], [], 0.0, 0.0,
                       sum(p.numel() for p in strategy.model.parameters() if p.requires_grad),
                       bench.info.get("task_order", list(range(len(exps)))), scenario=bench.scenario,
                       device=device_name(cfg.device))
    ckpt = Checkpointer(checkpoint_dir, result.key) if checkpoint_dir is not None else None
    stateful = [*(after_task or ()), *([plastic] if plastic else [])]  # hooks and fixes with state to resume
    start = ckpt.resume(strategy, gen, result, stateful) if ckpt else 0
    done = sum(steps_per_task[:start])
    first_step = done + 1  # after a restart, the planned count of the earlier tasks' steps
    ticker = Ticker(progress, total)
    for t in range(start, len(exps)):  # tasks before ``start`` were trained before a restart
        t0 = time.perf_counter()
        if strategy.trains_once and sets[t]:
            # From this seed's initial weights and batch order: the final model is a fresh model of
            # the seed trained on all data, whatever happened to it before.
            strategy.reinitialise(initial)
            gen.manual_seed(cfg.seed)

        def on_epoch(t: int = t) -> None:
            nonlocal done
            done += steps_per_task[t] // cfg.epochs
            if progress:
                progress(done, total, f"task {t + 1}/{len(exps)}")

        ticker.start_task(done, f"task {t + 1}/{len(exps)}")
        step_losses: list[float] = []
        loss = (train_task(cfg, strategy, exps, t, sets[t], gen, plastic, steps_per_task[t], on_epoch, step_losses,
                           ticker.step if progress else None)
                if sets[t] else None)  # nothing trained at this task (joint before the last), so no loss
        result.task_seconds.append(time.perf_counter() - t0)
        result.losses.append(loss)
        t1 = time.perf_counter()
        result.acc_matrix.append(evaluate())
        result.eval_seconds.append(time.perf_counter() - t1)
        result.stats.append(strategy.stats())
        for hook in after_task or ():
            hook(RunContext(cfg, bench, strategy, t, result.acc_matrix, result, step_losses, first_step))
        first_step += len(step_losses)
        if ckpt:
            ckpt.save(t, strategy, gen, result, time.perf_counter() - t_start, stateful)
    if ckpt:
        ckpt.finish()
    result.metrics = ({"avg_acc": average_accuracy(result.acc_matrix)} if strategy.trains_once
                      else summarize(result.acc_matrix, baseline))
    result.wall_seconds += time.perf_counter() - t_start
    result.peak_mem_mb, result.peak_mem_source = memory.peak_mb(), memory.source
    result.peak_device_mem_mb = device_memory.peak_mb()
    return result
