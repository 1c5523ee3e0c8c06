"""The run loop of :mod:`retain.training.loop` for an ensemble: N runs that differ only in seed
and task order, trained and evaluated together, returning one RunResult per member.

Each member is built exactly as its sequential run builds it (:func:`retain.training.loop.build`
with its seed: benchmark, initial weights, buffer generator), draws its batches from its own
generator with the same calls (:func:`retain.training.loop.iter_batches`) and is evaluated on its
own benchmark. What is shared is only the arithmetic: stacked parameters, one vmapped forward and
backward pass, one optimiser step, one evaluation pass per test batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from retain.benchmarks.base import Benchmark, Experience
from retain.config.run import RunSpec
from retain.ensemble.base import EnsembleStrategy
from retain.ensemble.data import epoch_sizes, member_batches
from retain.ensemble.evaluation import member_evaluator
from retain.ensemble.support import batched_class
from retain.errors import DivergedError
from retain.metrics.matrix import summarize
from retain.plasticity import make_plasticity
from retain.training.device import DeviceMemory, deterministic_algorithms, device_name, experience_on
from retain.training.loop import (
    Progress,
    RunContext,
    RunResult,
    build,
    make_optimizer_factory,
    training_sets,
)
from retain.training.peak_memory import PeakMemory
from retain.training.ticker import Ticker

#: Makes the after-task hooks of one member (fresh per member: probes keep state).
HookFactory = Callable[[RunSpec], list[Callable[[RunContext], None]]]


class NotBatchable(Exception):
    """The built members cannot be trained together (their runs go one by one instead)."""


def _check_alike(benches: list[Benchmark], strategies) -> None:
    """Members must step in lockstep: the same number of tasks, samples per task and outputs."""
    first = benches[0]
    for bench in benches[1:]:
        if (len(bench), bench.num_classes, bench.scenario) != (len(first), first.num_classes, first.scenario):
            raise NotBatchable("the members' benchmarks differ in tasks, classes or scenario")
        for a, b in zip(first.experiences, bench.experiences):
            if (a.num_train, len(a.test_y)) != (b.num_train, len(b.test_y)):
                raise NotBatchable("the members' tasks differ in size")
    if any(e.augment is not None for b in benches for e in b.experiences):
        raise NotBatchable("augmented training data")
    if any(s.trains_once for s in strategies):
        raise NotBatchable("a train-once strategy")


def run_ensemble(cfgs: list[RunSpec], *, progress: Progress | None = None,
                 hooks: HookFactory | None = None) -> list[RunResult | Exception]:
    """Train the members ``cfgs`` (one configuration but for seed and order) together; returns
    each member's RunResult, or the exception that ended it (a diverged member: the others go on).

    ``wall_seconds``, ``task_seconds`` and ``eval_seconds`` of a member are its share (1/N) of the
    ensemble's; ``peak_mem_mb`` is the ensemble's peak. Raises :class:`NotBatchable` before any
    training when the built members cannot step together."""
    with deterministic_algorithms(cfgs[0].deterministic, cfgs[0].device):
        return _run_ensemble(cfgs, progress, hooks)


def _run_ensemble(cfgs: list[RunSpec], progress: Progress | None, hooks: HookFactory | None
                  ) -> list[RunResult | Exception]:
    t_start = time.perf_counter()
    memory, device_memory = PeakMemory(), DeviceMemory(cfgs[0].device)
    memory.start()
    device_memory.start()
    built, rng_states = [], []
    if progress:
        progress(0, 0, "loading data")  # building the members' benchmarks may read and decode files
    for cfg in cfgs:
        built.append(build(cfg))
        rng_states.append(torch.get_rng_state())  # the global stream as the member's run leaves it after build
    benches, members = [b for b, _ in built], [s for _, s in built]
    _check_alike(benches, members)
    plastic = [make_plasticity(cfg.plasticity_config(), s, cfg.seed) for cfg, s in zip(cfgs, members)]
    fixes = MemberFixes(plastic, rng_states) if any(plastic) else None
    first, n = cfgs[0], len(cfgs)
    impl: EnsembleStrategy = batched_class(first.strategy_class)(members, make_optimizer_factory(first))
    task_il = benches[0].scenario == "task-il"
    exps = [b.experiences for b in benches]
    transforms: dict[int, object] = {}  # the transforms' device copies, shared by members (test sets go by batch)
    tested = [[experience_on(e, members[0].device, transforms, train=False) for e in member] for member in exps]
    evaluator = member_evaluator(impl.model, tested, task_il=task_il, num_classes=benches[0].num_classes)
    evaluate = lambda: evaluator(impl.model)  # noqa: E731
    baselines = evaluate()
    gens = [torch.Generator().manual_seed(cfg.seed) for cfg in cfgs]
    sets = [training_sets(s, e) for s, e in zip(members, exps)]
    steps_per_task = [first.epochs * -(-sum(e.num_train for e in s) // first.batch_size) for s in sets[0]]
    total = sum(steps_per_task)
    results = [RunResult(cfg, cfg.key, [], baselines[i], {}, [], [], [], 0.0, 0.0,
                         sum(p.numel() for p in members[i].model.parameters() if p.requires_grad),
                         benches[i].info.get("task_order", list(range(len(exps[i])))),
                         scenario=benches[i].scenario, device=device_name(cfg.device))
               for i, cfg in enumerate(cfgs)]
    member_hooks = [hooks(cfg) if hooks else [] for cfg in cfgs]
    failed: dict[int, Exception] = {}
    done, first_step = 0, 1
    ticker = Ticker(progress, total)
    for t in range(len(exps[0])):
        t0 = time.perf_counter()
        ticker.start_task(done, f"task {t + 1}/{len(exps[0])}")
        losses, step_losses = _train_task(first, impl, [s[t] for s in sets], [e[t] for e in exps], t, gens, failed,
                                          fixes, steps_per_task[t], ticker.step if progress else None)
        done += steps_per_task[t]
        if progress:
            progress(done, total, f"task {t + 1}/{len(exps[0])}")
        train_share = (time.perf_counter() - t0) / n
        t1 = time.perf_counter()
        rows = evaluate()
        eval_share = (time.perf_counter() - t1) / n
        impl.sync()
        for i, result in enumerate(results):
            result.task_seconds.append(train_share)
            result.losses.append(losses[i])
            result.acc_matrix.append(rows[i])
            result.eval_seconds.append(eval_share)
            result.stats.append(impl.stats(i))
            for hook in member_hooks[i] if i not in failed else ():
                hook(RunContext(cfgs[i], benches[i], members[i], t, result.acc_matrix, result,
                                step_losses[i], first_step))
        first_step += len(step_losses[0])
    wall, peak = time.perf_counter() - t_start, memory.peak_mb()
    for result in results:
        result.metrics = summarize(result.acc_matrix, result.baseline)
        result.wall_seconds = wall / n
        result.peak_mem_mb, result.peak_mem_source = peak, f"{memory.source}-ensemble-of-{n}"
        result.peak_device_mem_mb = device_memory.peak_mb()
    return [failed.get(i, result) for i, result in enumerate(results)]


class MemberFixes:
    """The members' own plasticity fixes (retain.plasticity), applied at task starts to each
    member's synced model and copied back into the stack. ReDo draws fresh weights from torch's
    global generator, so each member's global stream is kept here and swapped in around its call,
    continuing where the member's sequential run would be."""

    def __init__(self, fixes: list, rng_states: list[torch.Tensor]):
        self.fixes, self.rng_states = fixes, rng_states

    def begin_task(self, impl: EnsembleStrategy, t: int, current: list[Experience], steps: int) -> None:
        impl.sync_model()
        for i, (fix, exp) in enumerate(zip(self.fixes, current)):
            with torch.random.fork_rng(devices=[]):
                torch.set_rng_state(self.rng_states[i])
                fix.begin_task(t, exp, steps)
                self.rng_states[i] = torch.get_rng_state()
            impl.model.copy_from(i, impl.members[i].model)

    def after_steps(self, n: int) -> None:
        for fix in self.fixes:
            fix.steps += n  # the step count; the per-step fixes are not batched (support.py)


def _train_task(cfg: RunSpec, impl: EnsembleStrategy, train_on: list[list[Experience]], current: list[Experience],
                t: int, gens: list[torch.Generator], failed: dict[int, Exception], fixes: MemberFixes | None = None,
                planned: int = 0, on_step=None) -> tuple[list[float | None], list[list[float]]]:
    """``cfg.epochs`` passes of every member over its own ``train_on`` as task ``t``; returns each
    member's mean loss and per-step losses. A member whose loss turns non-finite is put in
    ``failed`` (its gradient never reaches the others: the loss is a sum over members). On an
    accelerator the task's data move there first, once for all members (storage dtype)."""
    device = impl.members[0].device
    moved: dict[int, object] = {}  # this task's device copies (shared storage once); freed when the task ends
    train_on = [[experience_on(e, device, moved) for e in sets] for sets in train_on]
    current = [experience_on(e, device, moved) for e in current]
    if not cfg.task_free:
        impl.begin_task(current)
    if fixes:
        fixes.begin_task(impl, t, current, planned)
    loss_sum, logged = torch.zeros(impl.size, device=device), []
    for epoch in range(cfg.epochs):
        impl.begin_epoch(epoch_sizes(train_on[0], cfg.batch_size))
        for x, y in member_batches(train_on, cfg.batch_size, gens):
            loss = impl.observe(x, y, current[0].task_id)["loss"]
            loss_sum += loss
            logged.append(loss)
            if on_step:
                on_step(len(logged))  # progress within the task (throttled: retain.training.ticker)
        for i in (~torch.isfinite(loss_sum)).nonzero().flatten().tolist():
            if i not in failed:
                failed[i] = DivergedError(f"loss became non-finite in task {t + 1}, epoch {epoch + 1} with "
                                          f"lr {cfg.lr}; lower --lr", task=t)
                impl.retire(i)
    if fixes:
        fixes.after_steps(len(logged))
    if not cfg.task_free:
        impl.end_task(current)
    steps = torch.stack(logged).T.tolist() if logged else [[] for _ in range(impl.size)]
    means = (loss_sum / max(len(logged), 1)).tolist()
    return [float(m) for m in means], steps

