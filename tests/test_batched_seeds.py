"""Batched seeds (retain.ensemble): member i of an ensemble reproduces the sequential run of its
seed, each member is stored under its sequential key, and what cannot be batched goes one by one.

Tolerance. The ensemble computes the same functions as the sequential runs, but its forward and
backward passes are batched matrix products (vmap turns each member's ``x @ W.T`` into one
``bmm``) and DER's three forward passes become one over the concatenated rows, so float sums run
in another order: parameters after the first task agree to about 1e-6 (we allow 1e-4), and an
accuracy can move by a test sample or two near a decision boundary (we allow 0.01, about 4 of the
450 test samples of a permuted-digits task). Everything that involves no float arithmetic is
exact: the batch order, the buffer's labels, task ids and inputs, and every random generator's
state at the end. Over the whole sequence small differences can grow, so final metrics are held to
the seed-to-seed noise instead.
"""

from __future__ import annotations

import pytest
import torch

from retain.config.run import RunConfig
from retain.ensemble import Ensemble, plan, unsupported
from retain.ensemble.loop import run_ensemble
from retain.ensemble.replay import EnsembleDER
from retain.ensemble.support import batched_class
from retain.execution.executors import InProcess, run_study
from retain.store import Store
from retain.strategies.der import DER
from retain.training.loop import run_experiment

SEEDS = (0, 1, 2)
ACC_TOL = 0.01
PARAM_TOL = 1e-4


def specs(strategy: str, seeds=SEEDS, tasks: int = 3, plasticity=None, task_free: bool = False, **params):
    if strategy in ("er", "der", "derpp", "agem"):
        params.setdefault("buffer_size", 60)
        params.setdefault("replay_batch_size", 16)
    return [RunConfig(strategy=strategy, seed=s, tasks=tasks, epochs=1, params=params, device="cpu",
                      plasticity=plasticity or {}, task_free=task_free).resolve() for s in seeds]


def snapshot(store: dict):
    """An after-task hook that keeps, per task, the model's weights and the buffer's contents."""

    def hook(ctx) -> None:
        s = ctx.strategy
        # boundary: the task id the strategy's begin_task last set (-1 when never called: task-free)
        snap = {"params": {n: p.detach().clone() for n, p in s.model.named_parameters()}, "boundary": s.task}
        buf = getattr(s, "buffer", None)
        if buf is not None:
            snap.update(y=buf.labels().clone(), task=buf.tasks().clone(), x=buf.x[: len(buf)].clone(),
                        logits=None if buf.logits is None else buf.logits[: len(buf)].clone(),
                        generator=buf.generator.get_state().clone())
        reg = next(iter(getattr(s, "regularisers", {}).values()), None)
        if reg is not None and getattr(reg, "fishers", None):  # EWC: the Fisher taken at this task's end
            snap.update(fisher={n: f.clone() for n, f in reg.fishers[-1].items()}, fisher_gen=reg._gen.get_state())
        store.setdefault(ctx.config.seed, []).append(snap)

    return hook


CASES = {"naive": ("naive", {}), "er": ("er", {}), "der": ("der", {}), "derpp": ("derpp", {}),
         "agem": ("agem", {}), "ewc": ("ewc", {"ewc_lambda": 50.0, "fisher_samples": 64}),
         "ewc-online-sampled": ("ewc", {"online": True, "gamma": 0.9, "fisher": "sampled", "ewc_lambda": 50.0}),
         "ewc-empirical": ("ewc", {"fisher": "empirical", "fisher_samples": 64, "ewc_lambda": 50.0}),
         "si": ("si", {"si_c": 1.0}), "lwf": ("lwf", {}),
         # plasticity fixes at task starts: ReDo draws from the global generator, shrink-and-perturb from its own
         "derpp-redo": ("derpp", {"plasticity": {"redo": True, "redo_tau": 0.9}}),
         "naive-shrink-perturb": ("naive", {"plasticity": {"shrink_perturb": True}}),
         # task-free: the loop hides the boundaries (no begin_task / end_task); the fixes at task starts still run
         "naive-task-free": ("naive", {"task_free": True}), "er-task-free": ("er", {"task_free": True}),
         "der-task-free": ("der", {"task_free": True}), "derpp-task-free": ("derpp", {"task_free": True}),
         "agem-task-free": ("agem", {"task_free": True}),
         "derpp-task-free-redo": ("derpp", {"task_free": True, "plasticity": {"redo": True, "redo_tau": 0.9}})}


@pytest.mark.parametrize("case", list(CASES))
def test_member_matches_the_sequential_run_of_its_seed(case):
    strategy, params = CASES[case]
    assert_members_match(specs(strategy, **params))


@pytest.mark.parametrize("strategy,params", [("derpp", {"buffer_size": 60, "replay_batch_size": 16}),
                                             ("ewc", {"ewc_lambda": 50.0, "fisher_samples": 32}), ("lwf", {})])
def test_a_vit_member_matches_the_sequential_run_of_its_seed(tmp_path, strategy, params):
    """The generic path (vmap over functional_call) on a transformer: vit-tiny has LayerNorm (each
    sample's own statistics) and attention, which the ensemble computes as explicit products
    (the sequential run: torch's fused kernel). Sound, so run_ensemble trains it, but ``plan`` keeps
    it one by one (no faster as an ensemble on the CPU: support.BACKBONES). Generated images in CIFAR-10's
    own format, not augmented (an augmented benchmark goes one by one)."""
    from vision_fixtures import write_cifar10

    write_cifar10(tmp_path, per_class=12)
    cfgs = [RunConfig(strategy=strategy, seed=s, tasks=2, epochs=1, batch_size=32, lr=0.03, benchmark="split-cifar10",
                      backbone="vit-tiny", backbone_options={"dim": 24, "depth": 2, "heads": 3, "patch": 8},
                      data_dir=str(tmp_path), benchmark_options={"verify": False, "augment": False},
                      params=params, device="cpu").resolve() for s in SEEDS]
    assert "backbone vit-tiny is not batched" in unsupported(cfgs[0])
    assert_members_match(cfgs)


def assert_members_match(cfgs) -> None:
    """Member i of the ensemble of ``cfgs`` against the sequential run of ``cfgs[i]`` (see the
    module docstring for each tolerance)."""
    seq_snaps, ens_snaps = {}, {}
    sequential = [run_experiment(c, after_task=[snapshot(seq_snaps)]) for c in cfgs]
    batched = run_ensemble(cfgs, hooks=lambda cfg: [snapshot(ens_snaps)])
    for seq, ens in zip(sequential, batched):
        assert ens.key == seq.key and ens.task_order == seq.task_order
        assert ens.baseline == seq.baseline  # the same initial weights: identical before training
        assert ens.acc_matrix[0] == pytest.approx(seq.acc_matrix[0], abs=ACC_TOL)
        a, b = seq_snaps[seq.config.seed][0], ens_snaps[seq.config.seed][0]
        shown = [[s["boundary"] for s in snaps[seq.config.seed]] for snaps in (seq_snaps, ens_snaps)]
        assert shown[0] == shown[1]  # the boundaries each member was shown: task ids, or none when task-free
        for name, p in a["params"].items():
            assert torch.allclose(b["params"][name], p, atol=PARAM_TOL), name
        if "fisher" in a:  # the same samples and draws (generator state), the same Fisher up to float order
            assert torch.equal(a["fisher_gen"], b["fisher_gen"])
            for name, f in a["fisher"].items():
                assert torch.allclose(b["fisher"][name], f, rtol=1e-3, atol=1e-7), name
        if "y" in a:  # same data order and the same reservoir draws: the same buffer, exactly
            assert torch.equal(a["y"], b["y"]) and torch.equal(a["task"], b["task"]) and torch.equal(a["x"], b["x"])
            if a["logits"] is not None:
                assert torch.allclose(a["logits"], b["logits"], atol=PARAM_TOL)
            last_a, last_b = seq_snaps[seq.config.seed][-1], ens_snaps[seq.config.seed][-1]
            assert torch.equal(last_a["generator"], last_b["generator"])  # as many draws, whole run
    final_seq = torch.tensor([r.metrics["avg_acc"] for r in sequential])
    final_ens = torch.tensor([r.metrics["avg_acc"] for r in batched])
    noise = max(float(final_seq.std()), ACC_TOL)
    assert float((final_ens - final_seq).abs().max()) <= noise


def test_task_free_runs_batch_and_blurred_ones_go_one_by_one(tmp_path):
    """A task-free study of one configuration trains as one ensemble (no fallback) whose members
    never see a boundary; blurred boundaries are not batched; a method that needs boundaries is
    refused task-free in an ensemble as in its sequential run."""
    from retain.errors import ConfigError

    cfgs = specs("derpp", seeds=(0, 1), tasks=2, task_free=True)
    jobs, notes = plan(cfgs)
    assert [j.members for j in jobs] == [tuple(cfgs)] and notes == []
    seen = []
    run_study(cfgs, Store(tmp_path / "r.db"), InProcess(), study="s", batch_seeds=True, on_record=seen.append)
    assert [r.run_key for r in seen] == [c.key for c in cfgs]
    assert all(r.finished and r.extra["batched"]["members"] == 2 and "batch_fallback" not in r.extra for r in seen)
    boundaries = {}
    run_ensemble(cfgs, hooks=lambda cfg: [lambda ctx: boundaries.setdefault(ctx.config.seed, []).append(
        ctx.strategy.task)])
    assert boundaries == {0: [-1, -1], 1: [-1, -1]}  # begin_task never ran

    blurred = [RunConfig(strategy="er", seed=s, tasks=2, epochs=1, task_free=True, blur=0.2, device="cpu",
                         params={"buffer_size": 60}).resolve() for s in (0, 1)]
    jobs, notes = plan(blurred)
    assert jobs == blurred and notes == ["2 run(s) of er train one by one, not batched: --blur"]
    for strategy in ("ewc", "si", "lwf"):
        with pytest.raises(ConfigError, match="cannot run task-free"):
            run_ensemble(specs(strategy, seeds=(0, 1), tasks=2, task_free=True))


def test_members_differ_and_follow_their_seed_not_their_place():
    """A member's numbers depend on its seed only: seed 2 alone equals seed 2 among others."""
    alone = run_ensemble(specs("derpp", seeds=(2, 5), tasks=2))
    among = run_ensemble(specs("derpp", seeds=(0, 2), tasks=2))
    for a, b in zip(alone[0].acc_matrix, among[1].acc_matrix):
        assert a == pytest.approx(b, abs=ACC_TOL)
    assert among[0].acc_matrix != among[1].acc_matrix


def test_a_study_stores_each_member_under_its_sequential_key_and_resumes(tmp_path):
    store = Store(tmp_path / "r.db")
    cfgs = specs("derpp", seeds=(0, 1, 2, 3), tasks=2)
    first = run_study(cfgs[:1], store, InProcess(), study="s")  # seed 0 sequentially
    assert first.ran == 1
    seen = []
    second = run_study(cfgs, store, InProcess(), study="s", batch_seeds=True, on_record=lambda r: seen.append(r))
    assert (second.ran, second.reused) == (3, 1)  # only the missing members train, as one ensemble
    assert [r.run_key for r in seen] == [c.key for c in cfgs[1:]]
    assert all(r.extra["batched"] == {"members": 3, "seeds": [1, 2, 3], "orders": [0, 0, 0]} for r in seen)
    assert all(r.finished and r.probes and len(r.acc_matrix) == 2 for r in seen)  # probes ran per member
    third = run_study(cfgs, store, InProcess(), study="s")  # sequential finds them all done
    assert (third.ran, third.reused) == (0, 4)


def test_orders_batch_too_and_keep_their_task_order():
    cfgs = [RunConfig(strategy="naive", seed=1, order=k, tasks=3, epochs=1, device="cpu").resolve() for k in (0, 1, 2)]
    jobs, _ = plan(cfgs)
    assert len(jobs) == 1 and isinstance(jobs[0], Ensemble) and jobs[0].order == "0-2"
    results = run_ensemble(list(jobs[0].members))
    sequential = [run_experiment(c) for c in cfgs]
    assert [r.task_order for r in results] == [r.task_order for r in sequential]
    for seq, ens in zip(sequential, results):
        assert ens.acc_matrix[0] == pytest.approx(seq.acc_matrix[0], abs=ACC_TOL)


def test_plan_groups_by_configuration_and_says_once_why_others_go_one_by_one():
    derpp = specs("derpp", seeds=(0, 1))
    other_lr = [RunConfig(strategy="derpp", seed=s, tasks=3, epochs=1, lr=0.05, params={"buffer_size": 60},
                          device="cpu").resolve() for s in (0, 1)]
    balanced = specs("er", seeds=(0, 1), buffer_kind="class-balanced")
    single = specs("naive", seeds=(0,))
    jobs, notes = plan([*derpp, *other_lr, *balanced, *single])
    assert [j.members if isinstance(j, Ensemble) else j for j in jobs] == [tuple(derpp), tuple(other_lr),
                                                                         *balanced, *single]
    assert notes == ["2 run(s) of er train one by one, not batched: buffer-kind class-balanced (only the "
                     "reservoir buffer is batched)"]
    _, notes = plan(derpp, checkpoints=True)
    assert notes and "--checkpoint-dir" in notes[0]
    assert "per-step plasticity fix" in unsupported(specs("naive", seeds=(0,), plasticity={"wsc": True})[0])
    assert unsupported(specs("naive", seeds=(0,), plasticity={"redo_tau": 0.2})[0]) is None  # no fix enabled
    resnet = RunConfig(strategy="naive", benchmark="synthetic", backbone="resnet18-reduced", device="cpu").resolve()
    assert "backbone resnet18-reduced" in unsupported(resnet)  # batch norm


def test_a_subclass_is_batched_only_when_it_declares_it():
    class Changed(DER):
        def observe(self, x, y, task, *, plain=None):  # something the batched DER does not do
            return super().observe(x, y, task, plain=plain)

    class Declared(DER):
        ensemble_strategy = EnsembleDER

    assert batched_class(DER) is EnsembleDER
    assert batched_class(Changed) is None
    assert batched_class(Declared) is EnsembleDER


def test_no_batch_seeds_flag_and_study_key(tmp_path):
    from retain.cli.main import build_parser
    from retain.config.study_file import parse_study

    args = build_parser().parse_args(["run", "--no-batch-seeds"])
    assert args.batch_seeds is False
    assert build_parser().parse_args(["run"]).batch_seeds is True
    text = "[study]\nseeds = 2\nbatch_seeds = false\n[benchmarks.permuted-digits]\n[strategies.naive]\n"
    assert parse_study(text, check_data=False).batch_seeds is False
    with pytest.raises(Exception, match="batch_seeds"):
        parse_study('[study]\nbatch_seeds = 1\n[benchmarks.permuted-digits]\n[strategies.naive]\n', check_data=False)


@pytest.mark.parametrize("benchmark", ["permuted-digits", "split-digits"])  # shared-storage path; generic path
def test_member_batches_are_each_members_sequential_batches(benchmark):
    from retain.benchmarks import make_benchmark
    from retain.ensemble.data import member_batches, member_test_batches
    from retain.training.loop import iter_batches

    exps = [make_benchmark(benchmark, tasks=5, seed=s).experiences[1] for s in SEEDS]
    stacked = list(member_batches([[e] for e in exps], 32, [torch.Generator().manual_seed(s) for s in SEEDS]))
    for i, (e, s) in enumerate(zip(exps, SEEDS)):
        own = list(iter_batches([e], 32, torch.Generator().manual_seed(s)))
        assert len(own) == len(stacked)
        for (x, y), b in zip(stacked, own):
            assert torch.equal(x[i], b.x) and torch.equal(y[i], b.y)
    if benchmark == "permuted-digits":
        for x, y in member_test_batches(exps, 100):
            assert all(torch.equal(x[i], exps[i].prepare(exps[i].test_x[: len(y[i])])) for i in range(len(SEEDS)))
            break


def test_each_member_reaches_its_own_loggers():
    from retain.ensemble.execute import execute_ensemble
    from retain.loggers import Logger, LoggerSpec, register_logger

    calls: list[tuple] = []

    @register_logger("test-batched-recorder")
    class Recorder(Logger):
        def start_run(self, info):
            calls.append(("start_run", info.key))

        def log_steps(self, task, first_step, losses):
            calls.append(("log_steps", task, first_step, len(losses)))

        def log_task(self, task, accuracies, metrics):
            calls.append(("log_task", task))

        def end_run(self, status, metrics):
            calls.append(("end_run", status))

    cfgs = specs("naive", seeds=(0, 1), tasks=2)
    records = execute_ensemble(Ensemble(tuple(cfgs)), loggers=(LoggerSpec("test-batched-recorder"),))
    assert [r.status for r in records] == ["finished", "finished"]
    assert sorted(c[1] for c in calls if c[0] == "start_run") == sorted(c.key for c in cfgs)
    steps = [c for c in calls if c[0] == "log_steps"]
    assert [s[1:3] for s in steps] == [(0, 1), (0, 1), (1, 44), (1, 44)] and steps[0][3] == 43  # steps count on
    assert [c for c in calls if c[0] == "end_run"] == [("end_run", "finished")] * 2


@pytest.mark.parametrize("case", ["derpp", "ewc-online-sampled", "si"])
def test_a_diverging_member_fails_alone(case):
    """A member whose weights turn NaN is recorded as failed; the others' numbers do not change."""
    from retain.ensemble import loop

    strategy, params = CASES[case]
    cfgs = specs(strategy, seeds=(0, 1), **params)
    clean = run_ensemble(cfgs)
    original = loop._train_task

    def poisoned(cfg, impl, *args, **kwargs):
        if args[2] == 1:  # task 2: member 1's weights become NaN before it trains
            with torch.no_grad():
                for p in impl.model.parameters():
                    p[1] = float("nan")
        return original(cfg, impl, *args, **kwargs)

    loop._train_task = poisoned
    try:
        results = run_ensemble(cfgs)
    finally:
        loop._train_task = original
    assert isinstance(results[1], Exception) and "non-finite in task 2" in str(results[1])
    assert results[0].acc_matrix == clean[0].acc_matrix and results[0].losses == clean[0].losses


@pytest.mark.parametrize("benchmark,scenario", [("permuted-digits", "task-il"), ("permuted-digits", "domain-il"),
                                                ("split-digits", "class-il")])
def test_batched_evaluation_is_each_members_own(benchmark, scenario):
    """Evaluation of all members at once (on permuted inputs: the permutation moved into the first
    layer) against each member's model evaluated alone, after the members' weights drifted apart."""
    from retain.ensemble.evaluation import evaluate_members
    from retain.ensemble.registry import EnsembleNaive
    from retain.training.evaluation import evaluate_all
    from retain.training.loop import build, make_optimizer_factory

    cfgs = [RunConfig(benchmark=benchmark, strategy="naive", seed=s, tasks=5, scenario=scenario, device="cpu").resolve()
            for s in SEEDS]
    built = [build(c) for c in cfgs]
    impl = EnsembleNaive([s for _, s in built], make_optimizer_factory(cfgs[0]))
    with torch.no_grad():
        for p in impl.model.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(3)) * 0.3)
    impl.sync()
    exps = [b.experiences for b, _ in built]
    rows = evaluate_members(impl.model, exps, task_il=scenario == "task-il", num_classes=built[0][0].num_classes)
    for row, (bench, strategy) in zip(rows, built):
        alone = evaluate_all(strategy.model, bench.experiences, task_il=scenario == "task-il",
                             num_classes=bench.num_classes)
        assert row == pytest.approx(alone, abs=ACC_TOL) and len(set(alone)) > 1


def _permuted_members(scenario: str, shift: float = 0.0):
    """An ensemble on permuted digits (3 tasks) whose members' weights are moved apart by ``shift``."""
    from retain.ensemble.registry import EnsembleNaive
    from retain.training.loop import build, make_optimizer_factory

    cfgs = [RunConfig(benchmark="permuted-digits", strategy="naive", seed=s, tasks=3, scenario=scenario,
                      device="cpu").resolve() for s in SEEDS]
    built = [build(c) for c in cfgs]
    impl = EnsembleNaive([s for _, s in built], make_optimizer_factory(cfgs[0]))
    with torch.no_grad():
        for p in impl.model.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(5)) * shift)
    kwargs = {"task_il": scenario == "task-il", "num_classes": built[0][0].num_classes}
    return impl.model, [b.experiences for b, _ in built], kwargs


@pytest.mark.parametrize("scenario", ["domain-il", "task-il"])
@pytest.mark.parametrize("bagged", [True, False])
def test_permuted_evaluation_counts_every_test_sample_across_batches(scenario, bagged):
    """The permuted evaluation reads the test set in batches; batches of 7 samples (the last one
    short) count exactly what one batch over the whole test set counts, on either first layer."""
    from retain.ensemble.evaluation import PermutedTests

    model, exps, kwargs = _permuted_members(scenario)
    assert len(exps[0][0].test_y) % 7 != 0
    whole, short = (PermutedTests.of(model, exps, chunk=chunk, **kwargs) for chunk in (10_000, 7))
    assert whole is not None and whole.bags is not None
    if not bagged:
        whole.bags = short.bags = None
    assert short(model) == whole(model)


@pytest.mark.parametrize("scenario", ["domain-il", "task-il"])
def test_bagged_first_layer_counts_what_the_dense_product_counts(scenario):
    """Each test image's bag holds exactly its nonzero pixels with their float values (the zeros
    left out add 0.0 * w to each sum), so the embedding_bag first layer counts what the dense
    product over every pixel counts, up to float order. A conversion that subtracts a mean (a
    stored zero is not 0.0) gets no bags: the dense product is used."""
    from retain.data.transforms import ToFloat
    from retain.ensemble.evaluation import PermutedTests, _bags

    model, exps, kwargs = _permuted_members(scenario, shift=0.3)
    prepared = PermutedTests.of(model, exps, **kwargs)
    cols, vals, starts = prepared.bags
    flat, to_float = prepared.flat, prepared.to_float
    rebuilt = torch.zeros(flat.shape)
    rows = torch.repeat_interleave(torch.arange(flat.shape[0]), starts.diff())
    rebuilt[rows, cols] = vals
    assert torch.equal(rebuilt, to_float(flat)) and len(vals) == int(flat.ne(0).sum()) < flat.numel()
    assert _bags(flat, ToFloat(mean=0.5, std=1.0), torch.device("cpu")) is None
    bagged = prepared(model)
    prepared.bags = None
    dense = prepared(model)
    assert all(b == pytest.approx(d, abs=ACC_TOL) for b, d in zip(bagged, dense))
    assert len({a for row in dense for a in row}) > 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is False "
                                                          "here)")
def test_cuda_ensemble_matches_the_cpu_ensemble():
    """``run_ensemble`` on a CUDA device (everything placed on the members' device; the draws
    still on the CPU) gives each member the accuracies the CPU ensemble gives it, within float
    noise after the first task and seed noise at the end (kernels differ by device): both data
    paths (shared permuted storage, per-member batches), replay, A-GEM and every regulariser."""
    from retain.ensemble.loop import run_ensemble

    def members(benchmark, strategy, device):
        return [RunConfig(benchmark=benchmark, strategy=strategy, seed=s, tasks=3, device=device).resolve()
                for s in SEEDS]

    for benchmark in ("split-digits", "permuted-digits"):
        for strategy in ("naive", "derpp", "agem", "ewc", "si", "lwf"):
            cpu = run_ensemble(members(benchmark, strategy, "cpu"))
            gpu = run_ensemble(members(benchmark, strategy, "cuda"))
            for c, g in zip(cpu, gpu):
                assert g.device.startswith("cuda") and g.peak_device_mem_mb > 0, (benchmark, strategy)
                assert g.acc_matrix[0] == pytest.approx(c.acc_matrix[0], abs=ACC_TOL), (benchmark, strategy)
                assert g.metrics["avg_acc"] == pytest.approx(c.metrics["avg_acc"], abs=0.05), (benchmark, strategy)


@pytest.mark.parametrize("strategy", ["naive", "er", "derpp"])
def test_hand_written_backward_steps_as_autograd_and_sgd_do(strategy):
    """The hand-written backward (retain.ensemble.manual) against autograd + torch.optim.SGD from the
    same members on the same batches, a retired member included: the same losses and parameters
    to the bit (the same kernels; the output gradient handed over as autograd hands it), the same
    buffers, and a retired member that never moves. Adam, or a subclass with its own ``step``, takes autograd."""
    from retain.ensemble.base import EnsembleStrategy
    from retain.ensemble.data import member_batches
    from retain.ensemble.support import batched_class
    from retain.training.loop import build, make_optimizer_factory, training_sets

    def ensemble(manual_on, optimizer="sgd"):
        cfgs = [RunConfig(benchmark="permuted-digits", strategy=strategy, seed=s, tasks=2, optimizer=optimizer,
                          device="cpu").resolve() for s in SEEDS]
        built = [build(c) for c in cfgs]
        impl = batched_class(cfgs[0].strategy_class)([s for _, s in built], make_optimizer_factory(cfgs[0]))
        impl._manual = impl._manual and manual_on
        sets = [training_sets(s, b.experiences) for b, s in built]
        return impl, [s[0] for s in sets], [torch.Generator().manual_seed(c.seed) for c in cfgs]

    (auto, sets, gens_a), (hand, _, gens_h) = ensemble(False), ensemble(True)
    assert hand.manual_lr() is not None and auto.manual_lr() is None
    auto.retire(1)
    hand.retire(1)
    frozen = {n: p[1].detach().clone() for n, p in hand.model.params.items()}
    for (x, y), (x2, y2) in zip(member_batches(sets, 16, gens_a), member_batches(sets, 16, gens_h)):
        assert torch.equal(x, x2)
        la, lh = auto.observe(x, y, 0), hand.observe(x2, y2, 0)
        assert set(la) == set(lh)
        for key in la:
            assert torch.equal(la[key], lh[key]), key
    for n, p in auto.model.params.items():
        assert torch.equal(p, hand.model.params[n]), n
        assert torch.equal(hand.model.params[n][1], frozen[n]), n
    if strategy != "naive":
        assert torch.equal(auto.buffer.y, hand.buffer.y) and torch.equal(auto.buffer.x, hand.buffer.x)
    assert ensemble(True, optimizer="adam")[0].manual_lr() is None

    class OwnStep(batched_class(auto.members[0].__class__)):
        def step(self, loss, extra=None):
            EnsembleStrategy.step(self, loss, extra)

    assert OwnStep(auto.members, make_optimizer_factory(RunConfig(strategy=strategy).resolve())).manual_lr() is None


@pytest.mark.parametrize("threads", [1, 2])
def test_a_members_product_is_the_same_whatever_the_ensembles_size(threads):
    """retain.ensemble.products: member i's product is bit-identical for every N (one kernel for
    all members; torch.mm of one member would round otherwise), the bias broadcast as
    torch.baddbmm broadcasts it, on the MNIST MLP's first-layer shapes."""
    from retain.ensemble import products

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        a, b = torch.randn(6, 384, 784, generator=gen), torch.randn(6, 784, 100, generator=gen)
        c = torch.randn(6, 384, 1, generator=gen)
        whole, added = products.bmm(a, b), products.baddbmm(c, a, b)
        for n in range(2, 7):
            got, plus = products.bmm(a[:n], b[:n]), products.baddbmm(c[:n], a[:n], b[:n])
            assert got.shape == plus.shape == (n, 384, 100)
            assert torch.equal(got, whole[:n]) and torch.equal(plus, added[:n]), n
        for i in range(6):  # member i's result is its own product, nobody else's
            assert torch.allclose(whole[i], a[i] @ b[i], atol=1e-3) and torch.allclose(added[i], c[i] + a[i] @ b[i],
                                                                                        atol=1e-3)
    finally:
        torch.set_num_threads(before)


def test_shared_rows_list_each_drawn_item_once():
    """DER++'s two draws as one list of rows (retain.ensemble.replay.shared_rows): the first draw's
    slots first, in order; every slot of the second draw found at its row; no slot listed twice
    before the padding; the list 2k long for every member, whatever the others drew (so no
    member's products depend on its companions)."""
    from retain.ensemble.replay import shared_rows

    gen = torch.Generator().manual_seed(0)
    for capacity, k in ((500, 128), (20, 20), (40, 16)):
        first = torch.stack([torch.randperm(capacity, generator=gen)[:k] for _ in range(5)])
        second = torch.stack([torch.randperm(capacity, generator=gen)[:k] for _ in range(5)])
        slots, rows = shared_rows(first, second, capacity)
        assert torch.equal(slots[:, :k], first)
        assert torch.equal(slots.gather(1, rows), second)
        distinct = [len(set(f.tolist()) | set(s.tolist())) for f, s in zip(first, second)]
        assert slots.shape[1] == 2 * k
        for m in range(5):
            assert len(set(slots[m, : distinct[m]].tolist())) == distinct[m]
            assert (slots[m, distinct[m]:] == first[m, 0]).all()  # the padding repeats the first slot
        assert torch.equal(shared_rows(first[:2], second[:2], capacity)[0], slots[:2])  # the same whatever N
    assert shared_rows(first, first, 40)[0].shape[1] == 32  # the same draw twice: padded all the same


@pytest.mark.parametrize("threads", [1, 2])
def test_a_members_numbers_do_not_depend_on_the_size_of_its_ensemble(threads):
    """Seeds 0-2 trained as an ensemble of 3 or of 5 end bit-identical (weights and matrix), at one
    thread and at two (where the products once split the members unevenly): DER++ with a large
    buffer and replay batch, where the members' shared draws differ the most, on inputs as wide
    as MNIST's (narrower products happened to round alike)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    runs = {}
    try:
        for n in (3, 5):
            weights: dict = {}
            cfgs = [RunConfig(strategy="derpp", benchmark="synthetic", seed=s, tasks=2, epochs=1, batch_size=128,
                              lr=0.01, device="cpu", benchmark_options={"dim": 784, "per_class": 400},
                              params={"buffer_size": 500, "replay_batch_size": 128}).resolve() for s in range(n)]
            results = run_ensemble(cfgs, hooks=lambda cfg, _w=weights: [snapshot(_w)] if cfg.seed < 3 else [])
            runs[n] = [(results[s].acc_matrix, weights[s][-1]["params"]) for s in range(3)]
    finally:
        torch.set_num_threads(before)
    for s in range(3):
        assert runs[3][s][0] == runs[5][s][0], s
        assert all(torch.equal(runs[3][s][1][k], runs[5][s][1][k]) for k in runs[3][s][1]), s


def test_planned_draws_are_the_draws_made_step_by_step():
    """StackedReservoir.plan makes an epoch's draws and slot choices ahead (two draws a step, as
    DER++; batches of 7 with a short last one; two epochs, the second starting with a full buffer):
    the same slots drawn, the same buffer contents and class counts, and each member's generator
    left where the step-by-step draws leave it. A plan must be used up in order: a draw while one is
    pending, or an offer of another size than planned, is refused."""
    from retain.ensemble.buffer import StackedReservoir
    from retain.memory.reservoir import ReservoirBuffer

    def stacked():
        return StackedReservoir([ReservoirBuffer(12, seed=s) for s in (3, 4, 5)])

    gen = torch.Generator().manual_seed(0)
    sizes = [7, 7, 7, 3]
    epochs = [[(torch.rand(3, n, 2, generator=gen), torch.randint(0, 4, (3, n), generator=gen)) for n in sizes]
              for _ in range(2)]
    live, planned = stacked(), stacked()
    for batches in epochs:
        planned.plan(sizes, 2, 5)
        for x, y in batches:
            drawn = [live.draw(5) for _ in range(2)] if len(live) else None
            assert (planned.next_draws() is None) == (drawn is None)
            if drawn is not None:
                assert all(torch.equal(a, b) for a, b in zip(drawn, planned.next_draws()))
            live.add(x, y, 0)
            planned.add(x, y, 0)
        assert not planned.planned
    live.sync()
    planned.sync()
    assert torch.equal(live.x, planned.x) and torch.equal(live.y, planned.y)
    assert torch.equal(live.class_counts, planned.class_counts)
    assert all(torch.equal(a.generator.get_state(), b.generator.get_state())
               for a, b in zip(live.members, planned.members))
    planned.plan([7], 1, 5)
    with pytest.raises(RuntimeError, match="planned"):
        planned.draw(5)
    with pytest.raises(RuntimeError, match="batch of 3 offered where the plan has 7"):
        planned.add(*epochs[0][-1], 0)
