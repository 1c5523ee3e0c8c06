"""The run loop for one config: stream tasks, let the strategy observe batches, evaluate every
task after each one, and return the accuracy matrix with timings. Fits on a screen on purpose."""

from __future__ import annotations

import random
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from retain.benchmarks import make_benchmark
from retain.benchmarks.base import Benchmark, Experience
from retain.benchmarks.blur import blurred_batches
from retain.checkpoint import Checkpointer
from retain.errors import ConfigError, DivergedError
from retain.evaluation import evaluate_all
from retain.metrics import summarize
from retain.models import BACKBONES
from retain.plasticity import make_plasticity
from retain.runconfig import RunConfig
from retain.strategies import STRATEGIES, Strategy

Progress = Callable[[int, int, str], None]  # (steps done, steps total, description)


@dataclass
class RunResult:
    config: RunConfig
    key: str
    acc_matrix: list[list[float]]
    baseline: list[float]
    metrics: dict[str, float]
    task_seconds: list[float]
    eval_seconds: list[float]
    losses: list[float]
    wall_seconds: float
    peak_mem_mb: float
    trainable_params: int
    task_order: list[int]
    stats: list[dict[str, Any]] = field(default_factory=list)
    probes: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RunContext:
    """What after-task hooks (probes, checkpoints) can see."""

    config: RunConfig
    benchmark: Benchmark
    strategy: Strategy
    task: int
    acc_matrix: list[list[float]]
    result: RunResult | None = None


def make_optimizer_factory(cfg: RunConfig):
    if cfg.optimizer == "sgd":
        return lambda params: torch.optim.SGD(params, lr=cfg.lr)
    return lambda params: torch.optim.Adam(params, lr=cfg.lr)


def build(cfg: RunConfig) -> tuple[Benchmark, Strategy]:
    """Benchmark (in the run's task order), model and strategy for ``cfg``, all seeded."""
    cfg.validate()
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)  # strategies may draw from Python's or numpy's generator too
    np.random.seed(cfg.seed)
    bench = make_benchmark(cfg.benchmark, tasks=cfg.tasks, seed=cfg.seed, scenario=cfg.scenario,
                           data_dir=cfg.data_dir, **cfg.benchmark_options).with_order(cfg.order)
    cfg.check_fits(bench)
    factory = BACKBONES.get(cfg.backbone)
    kwargs = {"hidden": cfg.hidden} if cfg.backbone == "mlp" else {}
    kwargs.update(cfg.backbone_options)
    model = factory(bench.input_shape, bench.num_classes, **kwargs)
    cls = STRATEGIES.get(cfg.strategy)
    if cfg.task_free and cls.needs_boundaries:
        raise ConfigError(f"strategy {cfg.strategy!r} needs task boundaries and cannot run task-free")
    strategy = cls(model, cfg.strategy_config(), make_optimizer=make_optimizer_factory(cfg),
                   num_classes=bench.num_classes)
    return bench, strategy


def iter_batches(exps: list[Experience], batch_size: int, gen: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
    """Shuffled batches over the union of ``exps``; each sample gets its own task's transform."""
    if len(exps) == 1:
        e = exps[0]
        perm = torch.randperm(e.num_train, generator=gen)
        for i in range(0, len(perm), batch_size):
            idx = perm[i: i + batch_size]
            yield e.prepare(e.train_x[idx], train=True), e.train_y[idx]
        return
    sizes = torch.tensor([e.num_train for e in exps])
    owner = torch.repeat_interleave(torch.arange(len(exps)), sizes)
    local = torch.cat([torch.arange(n) for n in sizes.tolist()])
    perm = torch.randperm(len(owner), generator=gen)
    for i in range(0, len(perm), batch_size):
        sel = perm[i: i + batch_size]
        xs, ys = [], []
        for k in owner[sel].unique().tolist():
            idx = local[sel[owner[sel] == k]]
            xs.append(exps[k].prepare(exps[k].train_x[idx], train=True))
            ys.append(exps[k].train_y[idx])
        yield torch.cat(xs), torch.cat(ys)


def run_experiment(cfg: RunConfig, *, progress: Progress | None = None,
                   after_task: list[Callable[[RunContext], None]] | None = None,
                   checkpoint_dir: str | Path | None = None) -> RunResult:
    """Train ``cfg.strategy`` on ``cfg.benchmark`` and return the accuracy matrix and costs.

    With ``checkpoint_dir`` the run saves its state after every task and, when started again
    after a crash, resumes from the last saved task (see :mod:`retain.checkpoint`)."""
    t_start = time.perf_counter()
    bench, strategy = build(cfg)
    plastic = make_plasticity(cfg.plasticity, strategy, cfg.seed)  # None unless a fix is enabled
    exps, task_il = bench.experiences, bench.scenario == "task-il"
    evaluate = lambda: evaluate_all(strategy.model, exps, task_il=task_il, num_classes=bench.num_classes)
    baseline = evaluate()
    gen = torch.Generator().manual_seed(cfg.seed)
    steps_per_task = [cfg.epochs * -(-e.num_train // cfg.batch_size) for e in exps]
    total, done = sum(steps_per_task), 0
    result = RunResult(cfg, cfg.key(), [], baseline, {}, [], [], [], 0.0, 0.0,
                       sum(p.numel() for p in strategy.model.parameters() if p.requires_grad),
                       bench.info.get("task_order", list(range(len(exps)))))
    ckpt = Checkpointer(checkpoint_dir, result.key) if checkpoint_dir is not None else None
    stateful = [*(after_task or ()), *([plastic] if plastic else [])]  # hooks and fixes with state to resume
    start = ckpt.resume(strategy, gen, result, stateful) if ckpt else 0
    done = sum(steps_per_task[:start])
    for t, exp in enumerate(exps):
        if t < start:  # already trained before the restart
            continue
        t0 = time.perf_counter()
        if not cfg.task_free:
            strategy.begin_task(exp)
        if plastic:
            plastic.begin_task(t, exp, steps_per_task[t])
        train_on = strategy.training_experiences(exps[: t + 1])
        loss_sum, n_steps = torch.zeros(()), 0
        for epoch in range(cfg.epochs):
            batches = (blurred_batches(exps, t, cfg.blur, cfg.seed, cfg.batch_size, gen)
                       if cfg.blur > 0 and len(train_on) == 1 else iter_batches(train_on, cfg.batch_size, gen))
            for x, y in batches:
                loss_sum += strategy.observe(x, y, exp.task_id)["loss"]
                if plastic:
                    plastic.after_step(x)
                n_steps += 1
            if not torch.isfinite(loss_sum):
                raise DivergedError(f"loss became non-finite in task {t}, epoch {epoch} with lr {cfg.lr}; "
                                    "lower --lr", task=t)
            done += steps_per_task[t] // cfg.epochs
            if progress:
                progress(done, total, f"task {t + 1}/{len(exps)}")
        if plastic:  # before end_task, so a strategy's anchor (EWC) sees the consolidated weights
            plastic.end_task(t)
        if not cfg.task_free:
            strategy.end_task(exp)
        result.task_seconds.append(time.perf_counter() - t0)
        result.losses.append(float(loss_sum) / max(n_steps, 1))
        t1 = time.perf_counter()
        result.acc_matrix.append(evaluate())
        result.eval_seconds.append(time.perf_counter() - t1)
        result.stats.append(strategy.stats())
        for hook in after_task or ():
            hook(RunContext(cfg, bench, strategy, t, result.acc_matrix, result))
        if ckpt:
            ckpt.save(t, strategy, gen, result, time.perf_counter() - t_start, stateful)
    if ckpt:
        ckpt.finish()
    result.metrics = summarize(result.acc_matrix, baseline)
    result.wall_seconds += time.perf_counter() - t_start
    result.peak_mem_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result
