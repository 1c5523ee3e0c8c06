"""Diagnostics probes on constructed inputs where the answer is known, and their events."""

import itertools
import math
import re

import pytest
import torch

from retain.diagnostics import buffer, collapse, dissimilarity, forgetting, variance
from retain.metrics.matrix import confidence_interval
from retain.store.record import RunRecord


def test_forgetting_drops_and_sudden_event():
    R = [[0.9, 0.1, 0.1], [0.85, 0.9, 0.1], [0.5, 0.88, 0.9]]
    assert forgetting.drops_from_best(R, 2) == pytest.approx([0.4, 0.02])
    assert forgetting.step_drops(R, 1) == pytest.approx([0.05])
    assert forgetting.sudden_forgetting_events(R, 1) == []  # 5 points < 10
    ev = forgetting.sudden_forgetting_events(R, 2)
    assert len(ev) == 1 and ev[0]["kind"] == "sudden_forgetting" and ev[0]["value"] == pytest.approx(0.35)
    assert "replay" in ev[0]["message"] and ev[0]["task"] == 2
    assert forgetting.sudden_forgetting_events(R, 2, threshold=0.4) == []
    assert R[2][0] == 0.5  # input untouched


def test_dead_relu_layer_is_fully_dormant_and_inactive():
    dead = torch.relu(-torch.rand(64, 10))  # all zeros
    assert collapse.dormant_fraction(dead) == 1.0
    assert collapse.inactive_fraction(dead) == 1.0
    alive = torch.rand(64, 10) + 0.1
    assert collapse.dormant_fraction(alive) == 0.0 and collapse.inactive_fraction(alive) == 0.0
    half = torch.cat([alive[:, :5], dead[:, :5]], 1)
    assert collapse.dormant_fraction(half) == 0.5
    assert collapse.redo_scores(alive).mean() == pytest.approx(1.0)


def test_rarely_active_unit_counts_only_under_the_1pct_definition():
    h = torch.ones(1000, 4)
    h[:, 0] = 0
    h[:5, 0] = 1000.0  # active on 0.5% of inputs but with a large mean: not ReDo-dormant
    assert collapse.inactive_fraction(h) == 0.25
    assert collapse.dormant_fraction(h) == 0.0


def test_effective_rank_and_energy_rank_known_answers():
    d = 16
    q, _ = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64))
    assert collapse.effective_rank(torch.eye(d)) == pytest.approx(d)
    assert collapse.effective_rank(q * 3.0) == pytest.approx(d)  # identity covariance, any rotation
    assert collapse.energy_rank(torch.eye(d)) == d
    rank1 = torch.randn(50, 1) @ torch.randn(1, d)
    assert collapse.effective_rank(rank1) == pytest.approx(1.0, abs=1e-3)
    assert collapse.energy_rank(rank1) == 1
    assert collapse.effective_rank(torch.zeros(5, 3)) == 0.0


def test_collapse_event_fires_on_falling_learning_acc_with_rising_dormancy_only():
    learn = [0.9, 0.9, 0.9, 0.9, 0.88, 0.8]
    dormant = [0.1, 0.1, 0.1, 0.1, 0.2, 0.4]
    ev = collapse.collapse_events(learn, dormant, window=5)
    assert len(ev) == 1 and ev[0]["kind"] == "plasticity_collapse" and "--redo" in ev[0]["message"]
    assert collapse.collapse_events(learn, [0.5, 0.5, 0.4, 0.3, 0.2, 0.1], window=5) == []
    assert collapse.collapse_events(learn[:-1], dormant[:-1], window=5) == []  # a 2-point fall is not yet a collapse
    assert collapse.collapse_events([0.9] * 6, dormant, window=5) == []
    # Still collapsing one task later: no second event.
    assert collapse.collapse_events(learn + [0.6], dormant + [0.6], window=5) == []
    assert collapse.slope([1, 2, 3]) == pytest.approx(1.0)
    # One badly learnt task is an outlier, not a collapse (medians of the window's halves).
    assert collapse.collapse_events([0.9] * 9 + [0.5], [0.1] * 5 + [0.3] * 5, window=10) == []
    assert collapse.collapse_events([0.9] * 5 + [0.8, 0.75, 0.7, 0.6, 0.5], [0.1] * 5 + [0.3] * 5, window=10)


def test_mean_abs_weight_ignores_biases():
    m = torch.nn.Linear(3, 2)
    with torch.no_grad():
        m.weight.fill_(-2.0)
        m.bias.fill_(100.0)
    assert collapse.mean_abs_weight(m) == 2.0


def test_variance_interval_and_overlap_event():
    # One-task runs: avg acc v, forgetting 0 (metrics are computed from the accuracy matrix).
    recs = [RunRecord(run_key=f"{s}{v}", study="", benchmark="b", strategy=s, seed=0, status="finished", config={},
                      acc_matrix=[[v]], baseline=[0.1])
            for s, v in [("wide", 0.5), ("wide", 0.9), ("wide", 0.7),
                         ("tight", 0.80), ("tight", 0.801), ("tight", 0.802),
                         ("far", 0.10), ("far", 0.11), ("far", 0.12)]]
    ci = variance.group_intervals(recs)[("b", "wide")]["avg_acc"]
    assert ci["mean"] == pytest.approx(0.7) and ci["low"] < 0.7 < ci["high"] and ci["n"] == 3
    assert ci["half"] == pytest.approx(4.303 * 0.2 / math.sqrt(3), rel=1e-3)  # t(0.975, 2) s / sqrt(n)
    overlaps = variance.overlapping_rankings(recs)
    # tight (80.1) ranks above wide (70.0) whose interval reaches it; far (11.0) is apart from both;
    # forgetting is equal everywhere: equal means are no ranking to doubt.
    assert [(o.metric, o.strategies) for o in overlaps] == [("avg_acc", ("tight", "wide"))]
    ev = variance.variance_events(recs)
    assert len(ev) == 1 and "wide" in ev[0]["message"] and "--seeds" in ev[0]["message"]
    assert "not established" in ev[0]["message"] and ev[0]["kind"] == "high_variance"


def test_only_methods_whose_intervals_overlap_are_named_together():
    # naive 51 ± ~4 and er 89 ± ~2 are far apart; mid 70 ± ~25 overlaps both: two sets, never one chain.
    values = {"naive": (0.49, 0.51, 0.53), "mid": (0.60, 0.70, 0.80), "er": (0.88, 0.89, 0.90)}
    recs = [RunRecord(run_key=f"{s}{v}", study="", benchmark="b", strategy=s, seed=0, status="finished", config={},
                      acc_matrix=[[v]], baseline=[0.1]) for s, vs in values.items() for v in vs]
    sets = [o.strategies for o in variance.overlapping_rankings(recs) if o.metric == "avg_acc"]
    assert sets == [("er", "mid"), ("mid", "naive")]
    for o in variance.overlapping_rankings(recs):  # every pair named together overlaps
        for a, b in itertools.combinations(o.values, 2):
            (ma, ha), (mb, hb) = confidence_interval(a), confidence_interval(b)
            assert abs(ma - mb) < ha + hb
    text = " ".join(e["message"] for e in variance.variance_events(recs))
    assert "er 89.0" in text and not re.search(r"naive[^;]*er 89|er 89[^;]*naive", text)


def test_buffer_entropy_coverage_and_events():
    balanced = {"fill": 1.0, "class_counts": {"0": 10, "1": 10, "2": 10, "3": 10}}
    p = buffer.buffer_probes(balanced, range(4), 2)
    assert p["buffer_class_entropy"] == pytest.approx(1.0) and p["buffer_class_coverage"] == 1.0
    assert buffer.buffer_events(p, 1) == []
    skewed = {"size": 50, "capacity": 100, "class_counts": {0: 97, 1: 3}}
    p = buffer.buffer_probes(skewed, range(4), 2)
    assert p["buffer_fill"] == 0.5 and p["buffer_class_coverage"] == 0.5
    kinds = {e["kind"] for e in buffer.buffer_events(p, 1)}
    assert kinds == {"buffer_homogeneous", "buffer_missing_classes"}
    assert buffer.buffer_probes({}, range(4), 2) == {}  # a strategy without a buffer
    nested = buffer.buffer_probes({"buffer": skewed}, range(4), 2)  # as replay strategies report them
    assert nested == p
    assert buffer.normalised_entropy({0: 1, 1: 1}, 4) == pytest.approx(math.log(2) / math.log(4))


def _task(seed, perm=None, n=300, d=20):
    g = torch.Generator().manual_seed(seed)
    centers = torch.rand(3, d, generator=g) * 4
    y = torch.arange(3).repeat_interleave(n // 3)
    x = centers[y] + torch.rand(len(y), d, generator=torch.Generator().manual_seed(seed + 1))
    return (x[:, perm] if perm is not None else x), y


def test_identical_tasks_have_dissimilarity_zero_and_permuted_ones_more():
    emb = dissimilarity.RandomReLUEmbedding(20, width=32, seed=0)
    x, y = _task(0)
    f = emb(x)
    assert dissimilarity.prototype_dissimilarity(f, y, f, y) == pytest.approx(0.0, abs=1e-9)
    assert dissimilarity.otdd_gaussian(f, y, f, y) == pytest.approx(0.0, abs=1e-6)
    xp, _ = _task(0, perm=torch.randperm(20, generator=torch.Generator().manual_seed(5)))
    fp = emb(xp)
    d_proto, d_otdd = dissimilarity.prototype_dissimilarity(f, y, fp, y), dissimilarity.otdd_gaussian(f, y, fp, y)
    assert 0.2 < d_proto <= 1.0 and 0.05 < d_otdd <= 1.0


def test_bures_w2_closed_form_for_isotropic_gaussians():
    import numpy as np

    m1, m2 = np.zeros(3), np.ones(3)
    # W2^2 between N(m1, a^2 I) and N(m2, b^2 I) is |m1 - m2|^2 + d (a - b)^2.
    assert dissimilarity.bures_w2(m1, 4 * np.eye(3), m2, np.eye(3)) == pytest.approx(3 + 3 * 1.0)


def test_dissimilarity_event_gate_is_configurable():
    assert dissimilarity.dissimilarity_events({"dissim_proto_prev": 0.8}, 3) != []
    ev = dissimilarity.dissimilarity_events({"dissim_proto_prev": 0.8}, 3, gate=0.9)
    assert ev == []
    msg = dissimilarity.dissimilarity_events({"dissim_proto_prev": 0.8}, 3)[0]["message"]
    assert "heuristic" in msg


@pytest.mark.slow
def test_benchmark_dissimilarity_grows_with_the_permuted_fraction():
    from retain.benchmarks import make_benchmark
    from retain.execution.dissimilarity_study import benchmark_dissimilarity

    d = [benchmark_dissimilarity(make_benchmark("permuted-digits", tasks=2, seed=0, permute_fraction=p), 300)
         for p in (0.0, 0.5, 1.0)]
    assert d[0]["dissim_proto"] == pytest.approx(0.0, abs=1e-6) and d[0]["dissim_otdd"] == pytest.approx(0, abs=1e-6)
    assert d[0]["dissim_proto"] < d[1]["dissim_proto"] < d[2]["dissim_proto"] <= 1.0
    assert d[0]["dissim_otdd"] < d[1]["dissim_otdd"] < d[2]["dissim_otdd"] <= 1.0


@pytest.mark.slow
def test_cli_study_dissimilarity_writes_plot_and_table(tmp_path):
    import json

    from retain.cli.main import main

    rc = main(["dissimilarity", "--fractions", "0,1", "--strategy", "naive", "--tasks", "2",
               "--epochs", "1", "--samples", "200", "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    rows = json.loads((tmp_path / "dissimilarity.json").read_text())
    assert [r["fraction"] for r in rows] == [0.0, 1.0]
    assert rows[1]["dissim_proto"] > rows[0]["dissim_proto"]
    assert rows[1]["forgetting"] > rows[0]["forgetting"]  # a full permutation makes naive forget more
    assert (tmp_path / "forgetting_vs_dissimilarity.png").stat().st_size > 1000


def test_cli_study_rejects_a_non_permuted_benchmark(tmp_path, capsys):
    from retain.cli.main import main

    assert main(["dissimilarity", "--benchmark", "split-digits", "--out", str(tmp_path)]) == 2
    assert "permuted" in capsys.readouterr().err


def test_event_warnings_group_by_strategy_and_kind_and_add_the_variance_check():
    import io

    from rich.console import Console

    from retain.cli.warnings import warning_lines
    from retain.diagnostics.probes import print_event_warnings

    # ewc seed 0 loses more than 10 points of an earlier task at 0-based tasks 2, 3 and 4, and
    # ends at avg acc 0.2; the other runs learn one task. Sudden forgetting and the metrics come
    # from the matrices (the stored events are the probes' copies of the same facts).
    R = [[0.9, 0.0, 0.0, 0.0, 0.0], [0.9, 0.9, 0.0, 0.0, 0.0], [0.7, 0.9, 0.9, 0.0, 0.0],
         [0.7, 0.6, 0.9, 0.9, 0.0], [0.1, 0.1, 0.1, 0.1, 0.6]]
    ev = [e for t in (2, 3, 4) for e in forgetting.sudden_forgetting_events(R, t)]

    def record(strategy, seed, v):
        matrix = R if (strategy, seed) == ("ewc", 0) else [[v]]
        return RunRecord(run_key=f"{strategy}-{seed}", study="", strategy=strategy, seed=seed, benchmark="b",
                         status="finished", config={}, events=ev if matrix is R else [], acc_matrix=matrix,
                         baseline=[0.1] * len(matrix))

    recs = [record("ewc", s, v) for s, v in ((0, 0.2), (1, 0.9), (2, 0.5))]
    recs += [record("si", s, v) for s, v in ((0, 0.3), (1, 0.8), (2, 0.55))]
    lines = warning_lines(recs, "all")
    assert lines[0] == ("warning: ewc (seed 0, after task 3): sudden forgetting: training task 3 dropped task 1 by "
                        "20.0 points (1 earlier task(s) lost more than 10); raise the penalty or add replay "
                        "(--strategy derpp) [3 events in 1/3 runs]")
    buf = io.StringIO()
    print_event_warnings(recs, Console(file=buf, width=300))
    out = buf.getvalue()
    assert "sudden forgetting, up to" in out and "not established" in out


def test_probe_hook_reads_a_real_replay_buffer():
    from retain.config.run import RunConfig
    from retain.diagnostics.probes import make_probe_hooks
    from retain.training.loop import run_experiment

    res = run_experiment(RunConfig(benchmark="synthetic", strategy="er", tasks=2, params={"buffer_size": 20}),
                         after_task=make_probe_hooks())
    last = res.probes[-1]
    assert last["buffer_fill"] == 1.0 and 0.0 < last["buffer_class_entropy"] <= 1.0
    assert last["buffer_class_coverage"] == 1.0


def test_plasticity_collapse_can_fire_on_a_five_task_benchmark(monkeypatch):
    from types import SimpleNamespace

    from retain.benchmarks import make_benchmark
    from retain.diagnostics import probes

    bench = make_benchmark("split-digits", tasks=5, seed=0)
    dormant = iter([0.05, 0.10, 0.30, 0.45, 0.60])
    monkeypatch.setattr(probes, "activation_probes", lambda model, x, tau: {"dormant_redo": next(dormant)})
    hook = probes.Probes(probes.ProbeConfig(dissimilarity=False))
    learn = [0.95, 0.93, 0.70, 0.55, 0.40]  # learning accuracy R[t][t] falls as units go dormant
    R = [[0.0] * 5 for _ in range(5)]
    strategy = SimpleNamespace(model=torch.nn.Linear(64, 10), family="regularisation", stats=lambda: {})
    fired = []
    for t in range(5):
        R[t][t] = learn[t]
        result = SimpleNamespace(events=[], probes=[])
        hook(SimpleNamespace(task=t, benchmark=bench, acc_matrix=R, strategy=strategy, result=result))
        fired += [t for e in result.events if e["kind"] == "plasticity_collapse"]
    assert fired == [4]
