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
from torch import Tensor

from retain.benchmarks.base import Benchmark, Experience
from retain.config.run import RunSpec
from retain.ensemble.base import EnsembleStrategy
from retain.ensemble.data import member_batches, member_test_batches, shared_permutations
from retain.ensemble.stacked import StackedModel
from retain.ensemble.support import batched_class
from retain.errors import DivergedError
from retain.metrics.matrix import summarize
from retain.plasticity import make_plasticity
from retain.training.device import DeviceMemory, deterministic_algorithms, device_name, experience_on
from retain.training.evaluation import _class_mask
from retain.training.loop import (
    Progress,
    RunContext,
    RunResult,
    build,
    make_optimizer_factory,
    training_sets,
)
from retain.training.peak_memory import PeakMemory

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


def _used_pixels(flat: Tensor, to_float) -> Tensor | None:
    """The columns of the stored test images ``flat`` ``[samples, pixels]`` that are not zero in
    every image, when some are and ``to_float`` maps a stored zero to 0.0 (no mean subtracted):
    the others contribute ``0.0 * w`` to each first-layer sum, exactly nothing for finite weights
    (retired members carry a healthy member's weights). None when every column is used."""
    if to_float(torch.zeros(1, 1, dtype=flat.dtype)).ne(0).any():
        return None
    used = flat.ne(0).any(0).nonzero().flatten()
    return None if len(used) == flat.shape[1] else used


@torch.inference_mode()
def _evaluate_permuted(model: StackedModel, tested: list[list[Experience]], perms: Tensor, *, task_il: bool,
                       num_classes: int, chunk: int = 2048) -> list[list[float]]:
    """:func:`evaluate_members` for an MLP on permuted inputs (:func:`shared_permutations`): a
    permutation of the inputs is a permutation of the first layer's columns (``x[:, p] @ W.T ==
    x @ W[:, argsort(p)].T``), so each task's first layers for all members are one product with
    the shared test batch, converted to float once per batch, then batched products for the rest.
    Activations are kept transposed (``[N, features, samples]``: every product stays contiguous)
    and one task at a time (a few MiB, in cache; all tasks at once measured slower). Pixels that
    are zero in every test image (116 of MNIST's 784) add exactly zero to every product, so they
    are left out of it (:func:`_used_pixels`). The same function as the per-task path; only the
    order of the float sums differs."""
    (_, first), rest = model.layers[0], model.layers[1:]
    n_tasks, n_members, pixels = perms.shape
    weight, bias = model.params[f"{first}.weight"], model.params[f"{first}.bias"]
    hidden = weight.shape[1]
    storage, to_float = tested[0][0].test_x, tested[0][0].transform.to_float
    flat = storage.reshape(storage.shape[0], -1)
    used = _used_pixels(flat, to_float)
    inverse = perms.argsort(2)
    if used is not None:  # only the used pixels' columns are gathered, and converted below
        flat = flat.index_select(1, used)
        inverse = inverse.index_select(2, used.to(inverse.device))
    kept = inverse.shape[2]
    first_layers = weight[None].expand(n_tasks, -1, -1, -1).gather(
        3, inverse[:, :, None, :].expand(n_tasks, n_members, hidden, kept)).reshape(n_tasks, -1, kept)
    first_bias = bias.reshape(-1, 1)
    later = [(kind, model.params.get(f"{name}.weight"), model.params.get(f"{name}.bias")) for kind, name in rest]
    exps = [[member[t] for member in tested] for t in range(n_tasks)]
    device = weight.device  # test sets stay on the CPU; this one goes over once per round, in its storage dtype
    labels = torch.stack([torch.stack([e.test_y for e in row]) for row in exps]).to(device)  # [tasks, N, samples]
    masks = (torch.stack([torch.stack([_class_mask(e.classes, num_classes) for e in row]) for row in exps])
             .unsqueeze(3).to(device) if task_il else None)  # [tasks, N, classes, 1]
    flat = flat.to(device)
    n = labels.shape[2]
    correct = torch.zeros(n_tasks, n_members, dtype=torch.int64, device=device)
    for i in range(0, n, chunk):
        x_t = to_float(flat[i: i + chunk]).T
        for t in range(n_tasks):
            h = torch.addmm(first_bias, first_layers[t], x_t).view(n_members, hidden, -1)
            for kind, w, b in later:
                h = torch.relu_(h) if kind == "relu" else torch.baddbmm(b.unsqueeze(2), w, h)
            if masks is not None:
                h = h + masks[t]
            correct[t] += (h.argmax(1) == labels[t, :, i: i + chunk]).sum(1)
    counts = correct.tolist()
    return [[counts[t][m] / max(n, 1) for t in range(n_tasks)] for m in range(n_members)]


@torch.inference_mode()
def evaluate_members(model, tested: list[list[Experience]], *, task_il: bool, num_classes: int,
                     batch_size: int = 2048) -> list[list[float]]:
    """One row of each member's accuracy matrix: member i's model on member i's test set of every
    task (``tested[i]``), all members in one forward pass per test batch."""
    perms = shared_permutations(tested) if isinstance(model, StackedModel) and model.layers else None
    if perms is not None:
        return _evaluate_permuted(model, tested, perms, task_il=task_il, num_classes=num_classes)
    n_members, n_tasks = len(tested), len(tested[0])
    device = model.parameters()[0].device
    counts, sizes = [], []
    for t in range(n_tasks):
        exps = [member[t] for member in tested]
        sizes.append(max(int(exps[0].test_y.shape[0]), 1))
        correct = torch.zeros(n_members, dtype=torch.int64, device=device)
        masks = (torch.stack([_class_mask(e.classes, num_classes) for e in exps])[:, None].to(device)
                 if task_il else None)
        for x, y in member_test_batches(exps, batch_size, device):
            logits = model(x)
            if masks is not None:
                logits = logits + masks
            correct += (logits.argmax(2) == y).sum(1)
        counts.append(correct)
    counts = torch.stack(counts).tolist()  # read from the device once
    return [[counts[t][m] / sizes[t] for t in range(n_tasks)] for m in range(n_members)]


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
    evaluate = lambda: evaluate_members(impl.model, tested, task_il=task_il,  # noqa: E731
                                        num_classes=benches[0].num_classes)
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
    for t in range(len(exps[0])):
        t0 = time.perf_counter()
        losses, step_losses = _train_task(first, impl, [s[t] for s in sets], [e[t] for e in exps], t, gens, failed,
                                          fixes, steps_per_task[t])
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
                planned: int = 0) -> tuple[list[float | None], list[list[float]]]:
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
        for x, y in member_batches(train_on, cfg.batch_size, gens):
            loss = impl.observe(x, y, current[0].task_id)["loss"]
            loss_sum += loss
            logged.append(loss)
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

