"""Plasticity fixes (ReDo, shrink-and-perturb, WSC), their config, and the probe hook in a run."""

import pytest
import torch
from torch import nn

from retain.config.run import RunConfig
from retain.diagnostics.probes import ProbeConfig, make_probe_hooks
from retain.errors import ConfigError
from retain.models.mlp import MLP
from retain.plasticity import PlasticityConfig, make_plasticity
from retain.plasticity.redo import linear_relu_triples, redo_reset
from retain.plasticity.shrink_perturb import init_scales, shrink_perturb
from retain.plasticity.wsc import WeightSpaceConsolidation
from retain.store import Store
from retain.training.loop import run_experiment


def _mlp_with_dead_units(dead=(0, 3, 5)):
    torch.manual_seed(0)
    m = MLP(8, (10,), 3)
    with torch.no_grad():
        m.body[1].bias.fill_(5.0)  # every other unit fires on every input
        m.body[1].bias[list(dead)] = -1e3  # these units never fire
    return m


def test_redo_resets_exactly_the_dead_units_without_changing_the_output():
    m = _mlp_with_dead_units()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    x = torch.rand(64, 8)
    m(x).sum().backward()
    opt.step()
    opt.state[m.head.weight]["exp_avg"].fill_(1.0)
    before_out, before_w = m(x).detach(), m.body[1].weight.detach().clone()
    assert len(linear_relu_triples(m)) == 1
    n = redo_reset(m, x, tau=0.0, optimizer=opt)
    assert n == 3
    dead = torch.zeros(10, dtype=torch.bool)
    dead[[0, 3, 5]] = True
    assert torch.allclose(m(x), before_out, atol=1e-5)  # outgoing weights zeroed
    assert not torch.equal(m.body[1].weight[dead], before_w[dead])
    assert torch.equal(m.body[1].weight[~dead], before_w[~dead])
    assert (m.body[1].bias[dead] == 0).all() and (m.head.weight[:, dead] == 0).all()
    assert (opt.state[m.head.weight]["exp_avg"][:, dead] == 0).all()
    assert (opt.state[m.head.weight]["exp_avg"][:, ~dead] == 1).all()


def test_shrink_and_perturb():
    m = nn.Linear(4, 3)
    w = m.weight.detach().clone()
    shrink_perturb(m, 0.5, 0.0, init_scales(m))
    assert torch.allclose(m.weight, 0.5 * w)
    shrink_perturb(m, 1.0, 0.1, init_scales(m), torch.Generator().manual_seed(0))
    assert not torch.allclose(m.weight, 0.5 * w)


def test_wsc_resets_low_score_weights_halfway_and_loads_the_average():
    m = nn.Linear(5, 1, bias=False)
    wsc = WeightSpaceConsolidation(m, warmup=0.5, keep=0.2, reset=0.5)
    wsc.begin_task(0, steps=2)
    with torch.no_grad():
        m.weight.zero_()
    wsc.end_task()  # previous task's weights: all 0
    wsc.begin_task(1, steps=4)  # warm-up: 2 steps
    with torch.no_grad():
        m.weight.fill_(2.0)
    for _ in range(2):
        m.weight.grad = torch.tensor([[5.0, 0.1, 0.1, 0.1, 0.1]])  # weight 0 has the top score
        wsc.after_step()
    assert m.weight[0, 0] == 2.0 and torch.allclose(m.weight[0, 1:], torch.ones(4))
    with torch.no_grad():
        m.weight.add_(2.0)
    wsc.after_step()
    wsc.end_task()
    assert torch.allclose(m.weight, torch.tensor([[3.0, 2.0, 2.0, 2.0, 2.0]]))  # mean of the two snapshots


def test_plasticity_config_is_checked():
    assert make_plasticity({}, None) is None
    with pytest.raises(ConfigError, match="unknown"):
        PlasticityConfig.from_dict({"redoo": True})
    with pytest.raises(ConfigError, match="wsc-keep"):
        PlasticityConfig.from_dict({"wsc": True, "wsc_keep": 2.0})
    with pytest.raises(ConfigError):
        RunConfig(benchmark="synthetic", plasticity={"sp_when": "never"}).validate()
    assert RunConfig(benchmark="synthetic").key() != RunConfig(benchmark="synthetic", plasticity={"wsc": True}).key()


@pytest.mark.parametrize("fix", [{"redo": True, "redo_every": 3}, {"shrink_perturb": True, "sp_when": "step"},
                                 {"shrink_perturb": True}, {"wsc": True}])
def test_each_fix_runs_in_the_loop_and_changes_the_run(fix):
    base = run_experiment(RunConfig(benchmark="synthetic", tasks=3))
    fixed = run_experiment(RunConfig(benchmark="synthetic", tasks=3, plasticity=fix))
    assert len(fixed.acc_matrix) == 3
    assert fixed.acc_matrix != base.acc_matrix


def test_probe_hook_records_probes_and_events_into_the_store(tmp_path):
    from retain.execution.execute import finished_record

    res = run_experiment(RunConfig(benchmark="permuted-digits", tasks=3, epochs=2),
                         after_task=make_probe_hooks(ProbeConfig(otdd=True)))
    assert [p["task"] for p in res.probes] == [0, 1, 2]
    for key in ("learning_acc", "dormant_redo", "dormant_1pct", "erank", "srank99", "mean_abs_w",
                "forget_max_drop", "probe_seconds"):
        assert key in res.probes[-1]
    assert "dissim_proto_prev" in res.probes[1] and 0.0 <= res.probes[1]["dissim_otdd_prev"] <= 1.0
    assert any(e["kind"] == "sudden_forgetting" for e in res.events)  # naive on permuted digits forgets
    plain = run_experiment(RunConfig(benchmark="permuted-digits", tasks=3, epochs=2))
    assert plain.acc_matrix == res.acc_matrix  # probes never change the numbers
    store = Store(tmp_path / "r.db")
    run_id = store.save_run(finished_record(res, study="", started_at=0.0))
    assert len(store.events(run_id)) == len(res.events)
    assert len(store.probes(run_id)["erank"]) == 3
