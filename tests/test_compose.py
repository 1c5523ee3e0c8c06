"""Composite strategies by name (``er+ewc``): the step's loss is the base's plus each regulariser's
term, the regularisers keep their own bookkeeping (EWC's anchor, SI's path integral, LwF's
teacher), single strategies give the numbers they gave before regularisers became parts, bad
combinations are refused, and composites run from the command line, study files and checkpoints."""

from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from retain.benchmarks import make_benchmark
from retain.cli.main import main
from retain.config.run import RunConfig
from retain.config.study_file import parse_study
from retain.errors import ConfigError
from retain.models.mlp import MLP
from retain.report.descriptions import cost
from retain.store import Store
from retain.strategies import STRATEGIES
from retain.strategies.config import StrategyConfig, hp
from retain.strategies.ewc import EWCPenalty
from retain.strategies.lwf import distillation
from retain.strategies.regulariser import Regularised
from retain.training.checkpoint import load, path_for
from retain.training.loop import run_experiment

TINY = {"buffer_size": 32, "replay_batch_size": 8, "fisher_samples": 32}
LR = 0.05


@pytest.fixture(autouse=True)
def _registry(monkeypatch):
    """Composites built here stay out of the registry that other tests see."""
    monkeypatch.setattr(STRATEGIES, "_items", dict(STRATEGIES._items))


def make(name: str, **params):
    torch.manual_seed(0)
    cls = STRATEGIES.get(name)
    return cls(MLP(6, (8,), 3), cls.Config.from_params(name, {**TINY, **params}),
               make_optimizer=lambda ps: torch.optim.SGD(ps, lr=LR), num_classes=3)


@functools.cache
def _experience():
    return make_benchmark("synthetic", tasks=1, seed=0).experiences[0]


def tiny(seed: int, n: int = 48):
    """An experience of ``n`` random 6-feature samples of classes 0-2."""
    g = torch.Generator().manual_seed(seed)
    return dataclasses.replace(_experience(), train_x=torch.rand(n, 6, generator=g), classes=(0, 1, 2),
                               train_y=torch.randint(0, 3, (n,), generator=g), transform=lambda x: x)


def train(s, exp, task: int, steps: int = 6) -> None:
    s.begin_task(exp)
    for i in range(steps):
        s.observe(exp.train_x[i * 8: (i + 1) * 8], exp.train_y[i * 8: (i + 1) * 8], task)


def into_task_two(name: str, **params):
    """A strategy that finished one task and took a few steps into the next (off its anchors)."""
    s, a, b = make(name, **params), tiny(0), tiny(1)
    train(s, a, 0)
    s.end_task(a)
    train(s, b, 1, steps=3)
    return s, b.train_x[24:32], b.train_y[24:32]


def observe_recording_replay(s, x, y):
    """``s.observe(x, y, 1)`` that also returns the buffer batches it drew and the weights before."""
    drawn, replay = [], s.replay
    s.replay = lambda k: drawn.append(replay(k)) or drawn[-1]
    before = copy.deepcopy(s.model)
    return s.observe(x, y, 1), drawn, before


def test_composite_step_is_the_base_loss_plus_each_regularisers_term():
    s, x, y = into_task_two("er+ewc+lwf", ewc_lambda=50.0, lwf_alpha=2.0)
    out, drawn, model = observe_recording_replay(s, x, y)
    params = dict(model.named_parameters())
    logits = model(torch.cat([x, drawn[0].x]))
    base = F.cross_entropy(logits, torch.cat([y, drawn[0].y]))
    ewc = s.regularisers["ewc"]
    pen = 0.5 * 50.0 * sum(sum((f[n] * (p - a[n]) ** 2).sum() for n, p in params.items())
                           for f, a in zip(ewc.fishers, ewc.anchors))
    kd = 2.0 * distillation(logits[: len(y)], s.regularisers["lwf"].old_model(x), 2.0)  # current rows only
    assert float(pen.detach()) > 1e-6 and float(kd.detach()) > 1e-6
    for key, want in (("loss", base), ("ewc", pen), ("lwf", kd)):
        torch.testing.assert_close(out[key], want.detach(), rtol=1e-5, atol=1e-8)
    grads = torch.autograd.grad(base + pen + kd, list(params.values()))
    for (n, p), g in zip(params.items(), grads):
        torch.testing.assert_close(dict(s.model.named_parameters())[n].detach(), (p - LR * g).detach(),
                                   rtol=1e-5, atol=1e-7)


def test_ewc_part_is_zero_at_its_anchor_and_grows_off_it():
    s, a = make("er+ewc", ewc_lambda=5.0), tiny(0)
    train(s, a, 0)
    s.end_task(a)
    ewc = s.regularisers["ewc"]
    assert isinstance(ewc, EWCPenalty) and float(ewc.penalty().detach()) == 0.0
    train(s, tiny(1), 1, steps=3)
    assert float(ewc.penalty().detach()) > 0.0


def test_si_part_accumulates_exactly_as_si_alone():
    alone, part = make("si", si_c=0.5), make("naive+si", si_c=0.5)
    for s in (alone, part):
        for t in range(2):
            exp = tiny(t)
            train(s, exp, t)
            s.end_task(exp)
        train(s, tiny(2), 2, steps=2)  # omega mid-task, penalty active
    a, p = alone.regularisers["si"], part.regularisers["si"]
    for n in a.importance:
        assert torch.equal(a.importance[n], p.importance[n]) and torch.equal(a.omega[n], p.omega[n])
    assert float(p.importance["body.1.weight"].abs().sum()) > 0


def test_si_in_a_composite_counts_only_the_base_losss_gradient():
    # EWC and SI both pull hard here: had their gradients been counted, omega would be far off.
    s, x, y = into_task_two("er+ewc+si", ewc_lambda=500.0, si_c=1e3)
    si = s.regularisers["si"]
    omega = {n: t.clone() for n, t in si.omega.items()}
    _, drawn, model = observe_recording_replay(s, x, y)
    params = dict(model.named_parameters())
    base = F.cross_entropy(model(torch.cat([x, drawn[0].x])), torch.cat([y, drawn[0].y]))
    grads = dict(zip(params, torch.autograd.grad(base, list(params.values()))))
    for n, p in s.model.named_parameters():
        step = p.detach() - params[n].detach()
        torch.testing.assert_close(si.omega[n] - omega[n], -grads[n] * step, rtol=1e-4, atol=1e-9)


def test_lwf_part_with_er_distils_from_the_teacher_taken_at_task_end():
    s, a = make("er+lwf"), tiny(0)
    train(s, a, 0)
    s.end_task(a)
    lwf = s.regularisers["lwf"]
    assert lwf.old_classes == [0, 1, 2] and lwf.old_model is not s.model
    x, y = tiny(1).train_x[:8], tiny(1).train_y[:8]
    assert float(s.observe(x, y, 1)["lwf"]) == pytest.approx(0.0, abs=1e-7)  # the model is still the teacher
    train(s, tiny(1), 1, steps=4)
    assert float(s.observe(x, y, 1)["lwf"]) > 1e-6
    assert {"buffer", "lwf_old_classes"} <= set(s.stats())  # both parts report


PARAMS = {"ewc": {"ewc_lambda": 5.0, "fisher_samples": 64}, "si": {"si_c": 0.5}, "lwf": {"lwf_alpha": 2.0}}


# Float64 sums of every weight after each of 3 tasks of permuted-digits (seed 1, 1 thread): `naive+X`
# must give X's numbers to the bit. (This test once compared X with sums frozen at b684a42, before
# regularisers became parts; those were the numbers of that session's CPU, and another CPU's kernels
# round differently: naive's first task differs by a relative 4e-8 on this project's later machines,
# and SI under Adam by 20 % after it. The comparison that holds on any machine is the one below.)
@pytest.mark.parametrize("single", ["ewc", "si", "lwf"])
def test_a_regulariser_part_on_naive_is_the_strategy_itself(single):
    def weight_sums(strategy: str) -> list[float]:
        sums: list[float] = []
        extra = {"optimizer": "adam", "lr": 0.01} if single == "si" else {}
        run_experiment(RunConfig(benchmark="permuted-digits", strategy=strategy, tasks=3, seed=1,
                                 params=PARAMS.get(single, {}), **extra),
                       after_task=[lambda ctx: sums.append(float(sum(p.detach().double().sum()
                                                                     for p in ctx.strategy.model.parameters())))])
        return sums

    assert torch.get_num_threads() == 1  # float sums depend on the thread count (conftest sets 1)
    assert weight_sums(f"naive+{single}") == weight_sums(single)


@pytest.mark.parametrize("name, message", [
    ("ewc+er", "ewc is a regulariser; put a base first"),
    ("ewc+si", "ewc is a regulariser; put a base first"),
    ("er+naive", "only regularisers can follow the base, and naive is not one"),
    ("er+der", "only regularisers can follow the base, and der is not one"),
    ("er+ewc+ewc", "ewc appears more than once"),
    ("joint+ewc", "joint does not take regularisers"),
    ("online-lora+si", "online-lora does not take regularisers"),
    ("er+nope", "'nope' is not a strategy"),
    ("er+", "no spaces or empty parts"),
    ("er + ewc", "no spaces or empty parts"),
])
def test_bad_combinations_are_refused_with_the_rule(name, message):
    with pytest.raises(ConfigError, match=message):
        STRATEGIES.get(name)
    assert name not in STRATEGIES.names()


def _fake_regulariser(buffer_default: int):
    @dataclass
    class FakeConfig(StrategyConfig):
        buffer_size: int = hp(buffer_default, "a field that er has too", low=1)

    class Fake(Regularised):
        """A regulariser whose only hyperparameter is also one of ER's."""

        Config = FakeConfig
        regulariser = EWCPenalty

    return Fake


def test_a_shared_field_merges_when_it_agrees_and_is_refused_when_it_clashes(monkeypatch):
    monkeypatch.setitem(STRATEGIES._items, "same", _fake_regulariser(500))
    monkeypatch.setitem(STRATEGIES._items, "clash", _fake_regulariser(100))
    names = [f.name for f, _ in STRATEGIES.get("er+same").Config.fields()]
    assert names.count("buffer_size") == 1
    with pytest.raises(ConfigError, match="er and clash both have a hyperparameter buffer-size"):
        STRATEGIES.get("er+clash")


def test_composite_config_describes_itself_and_validates_every_part():
    cls = STRATEGIES.get("derpp+ewc+si")
    fields = {f.name for f, _ in cls.Config.fields()}
    assert {"buffer_size", "alpha", "beta", "ewc_lambda", "online", "si_c", "si_xi"} <= fields
    assert cls.family == "replay" and cls.needs_boundaries and not cls.default_study
    assert STRATEGIES.get("naive+ewc").family == "regularisation"
    assert "derpp" in cls.__doc__ and "ewc:" in cls.__doc__ and "si:" in cls.__doc__
    with pytest.raises(ConfigError, match="derpp\\+ewc\\+si: si-xi must be > 0"):
        cls.Config.from_params("derpp+ewc+si", {"si_xi": 0.0})
    with pytest.raises(ConfigError, match="needs task boundaries"):
        run_experiment(RunConfig(benchmark="synthetic", strategy="er+ewc", params=TINY, task_free=True))
    a = RunConfig(benchmark="synthetic", strategy="er+ewc", params={"ewc_lambda": 2.0})
    b = RunConfig(benchmark="synthetic", strategy="er+ewc", params={"ewc_lambda": 3.0})
    c = RunConfig(benchmark="synthetic", strategy="er+ewc", params={"buffer_size": 100})
    assert len({a.key(), b.key(), c.key()}) == 3  # every part's hyperparameters are in the key


@pytest.mark.parametrize("name", ["er+ewc", "derpp+si+lwf", "agem+ewc+si"])
def test_a_stopped_composite_resumes_to_the_identical_matrix(tmp_path, name):
    def cfg():
        return RunConfig(benchmark="synthetic", strategy=name, tasks=3, seed=0, params=dict(TINY))

    def stop(ctx):
        if ctx.task == 2:
            raise KeyboardInterrupt

    reference = run_experiment(cfg())
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg(), checkpoint_dir=tmp_path, after_task=[stop])
    blob = load(path_for(tmp_path, reference.key), run_key=reference.key)
    assert set(blob["strategy"]["regularisers"]) == set(name.split("+")[1:]) and "buffer" in blob["strategy"]
    resumed = run_experiment(cfg(), checkpoint_dir=tmp_path)
    assert resumed.acc_matrix == reference.acc_matrix and resumed.losses == reference.losses


def test_cli_strategy_plus_runs_the_composite_and_stores_every_parts_hyperparameters(tmp_path, capsys):
    code = main(["run", "--benchmark", "permuted-digits", "--tasks", "2", "--seeds", "1", "--epochs", "1",
                 "--strategy", "er", "--plus", "ewc", "--ewc-lambda", "3", "--buffer-size", "64",
                 "--out", str(tmp_path), "--workers", "1", "--quiet", "--no-report"])
    assert code == 0, capsys.readouterr().err
    (run,) = Store(tmp_path / "retain.db", readonly=True).runs()
    assert run.strategy == "er+ewc" and len(run.acc_matrix) == 2
    params = run.config["params"]
    assert params["buffer_size"] == 64 and params["ewc_lambda"] == 3.0 and params["replay_batch_size"] == 128
    assert {"fisher", "fisher_samples", "online", "gamma", "buffer_kind"} <= set(params)
    assert "--strategy er --plus ewc" in run.extra["command"]
    assert main(["run", "--plus", "ewc", "--out", str(tmp_path), "--quiet"]) == 2
    assert "--plus adds regularisers to a --strategy" in capsys.readouterr().err


def test_study_files_name_composites_directly_or_by_components():
    head = '[study]\nseeds = 1\n[benchmarks.synthetic]\n'
    direct = parse_study(head + '[strategies."er+ewc"]\newc_lambda = 2.0\nbuffer_size = 64\n')
    listed = parse_study(head + '[strategies.er]\ncomponents = ["ewc"]\newc_lambda = 2.0\nbuffer_size = 64\n')
    assert [c.key for c in direct.configs] == [c.key for c in listed.configs]
    assert listed.configs[0].strategy == "er+ewc" and listed.configs[0].strategy_config().ewc_lambda == 2.0
    with pytest.raises(ConfigError, match=r"<study>:4: strategies.ewc: .*ewc is a regulariser"):
        parse_study(head + '[strategies.ewc]\ncomponents = ["er"]\n')
    with pytest.raises(ConfigError, match=r"<study>:5: strategies.er.components: must be a list"):
        parse_study(head + '[strategies.er]\ncomponents = "ewc"\n')


@pytest.mark.slow
def test_composites_resolve_in_worker_processes(tmp_path, capsys):
    code = main(["run", "--benchmark", "synthetic", "--seeds", "2", "--strategy", "derpp+lwf",
                 "--buffer-size", "32", "--out", str(tmp_path), "--workers", "2", "--quiet", "--no-report"])
    assert code == 0, capsys.readouterr().err
    runs = Store(tmp_path / "retain.db", readonly=True).runs()
    assert sorted(r.seed for r in runs) == [0, 1] and {r.strategy for r in runs} == {"derpp+lwf"}


def test_list_names_the_parts_not_every_combination_and_reports_describe_composites(capsys):
    STRATEGIES.get("er+ewc")  # built in this process: still not listed
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert not any(line.split()[:1] in (["er+ewc"], ["*er+ewc"]) for line in lines)
    (at,) = [i for i, line in enumerate(lines) if line.split()[:1] == ["composites"]]
    entry = [lines[at]] + list(itertools.takewhile(lambda x: x.startswith(" " * 21), lines[at + 1:]))
    line = " ".join(" ".join(entry).split())  # the entry, wrapped to the terminal's width
    assert "er+ewc" in line and "regularisers: ewc, lwf, si" in line
    assert cost("er+ewc").startswith("er: a reservoir buffer") and "; ewc: stores" in cost("er+ewc")


def test_a_part_from_a_plugin_file_puts_its_source_in_the_composites_key(tmp_path):
    from retain.plugins import load_file

    plugin = tmp_path / "my_ewc.py"
    plugin.write_text('from retain.strategies import register_strategy\nfrom retain.strategies.ewc import EWC\n\n\n'
                      '@register_strategy("my-ewc")\nclass MyEWC(EWC):\n    """EWC under another name."""\n')
    source = load_file(plugin)
    spec = RunConfig(benchmark="synthetic", strategy="er+my-ewc", params=TINY).resolve()
    assert [p.sha256 for p in spec.plugins] == [source.sha256]
    assert RunConfig(benchmark="synthetic", strategy="er+ewc", params=TINY).resolve().plugins == ()
