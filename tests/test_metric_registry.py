"""Metrics by name (retain.metrics.registry), computed from the stored accuracy matrices when a
report or the terminal table is made: a metric registered today shows for runs recorded before
it; metrics from installed packages (entry points); sudden forgetting recomputed from the matrix
and shown once; each strategy describing itself in the report."""

from __future__ import annotations

import csv
import io
import sys
import textwrap

import numpy as np
import pytest
from rich.console import Console

from retain.cli.console import results_table
from retain.cli.main import main
from retain.cli.warnings import warning_lines
from retain.diagnostics import forgetting
from retain.diagnostics.run_events import events_of
from retain.diagnostics.variance import overlapping_rankings
from retain.errors import ConfigError
from retain.metrics.matrix import confidence_interval, format_mean_ci, summarize
from retain.metrics.registry import BUILTIN, METRICS, compute_metrics, metrics_of, register_metric
from retain.report import render_table, write_report
from retain.report.descriptions import cost, first_paragraph, summary
from retain.store import Store
from retain.store.record import RunRecord
from retain.strategies import STRATEGIES, Strategy, register_strategy
from retain.strategies.er import ER
from test_report import fake_run, naive_R


@pytest.fixture
def registry(monkeypatch):
    """The metric registry as it is, restored after the test (whatever the test registers)."""
    monkeypatch.setattr(METRICS, "_items", dict(METRICS._items))
    return METRICS


def first_task_final(R, baseline):
    """A metric the runs below were recorded without: the final accuracy on the first task."""
    return float(R[-1][0]) if len(R) > 1 else None


def test_builtins_are_what_the_loop_records():
    rng = np.random.default_rng(0)
    assert [m.name for m in METRICS.in_order()[:len(BUILTIN)]] == list(BUILTIN)
    for T in (1, 2, 5):
        R = rng.uniform(size=(T, T)).tolist()
        base = rng.uniform(size=T).tolist()
        before = [row[:] for row in R]
        assert compute_metrics(R, base) == pytest.approx(summarize(R, base))
        assert set(compute_metrics(R, base)) == set(summarize(R, base))
        assert compute_metrics(R, None) == pytest.approx(summarize(R))  # no baseline: no FWT
        assert "fwt" not in compute_metrics(R, None)
        assert compute_metrics(R, base, trains_once=True) == {"avg_acc": pytest.approx(np.mean(R[-1]))}
        assert R == before  # inputs untouched


def test_registration_is_checked(registry):
    with pytest.raises(ValueError, match="registered twice"):
        register_metric("avg_acc", label="again", higher_is_better=True, description="x")(first_task_final)
    with pytest.raises(ValueError, match="lower-case identifier"):
        register_metric("First Task", label="x", higher_is_better=True, description="x")
    with pytest.raises(ValueError, match="label and a description"):
        register_metric("blank", label="x", higher_is_better=True, description=" ")
    register_metric("wordy", label="wordy", higher_is_better=True, description="says a word")(lambda R, b: "high")
    with pytest.raises(ConfigError, match="metric 'wordy' returned str"):
        compute_metrics([[0.5]], None)


@pytest.fixture
def old_store(tmp_path) -> Store:
    """Runs recorded before ``first_task_final`` existed: their stored metrics lack it, and one
    naive run stored a wrong avg_acc (0.0123) that nothing may show."""
    s = Store(tmp_path / "old.db")
    for seed in range(3):
        run = fake_run("naive", seed, naive_R(seed), wall=1.0)
        if seed == 0:
            run["metrics"] = {**run["metrics"], "avg_acc": 0.0123}
        s.save_run(run)
        s.save_run(fake_run("joint", seed, [[0.0, 0.0], [0.9, 0.85]], wall=2.0, metrics={"avg_acc": 0.875}))
    s.close()
    return Store(tmp_path / "old.db", readonly=True)


def test_a_new_metric_shows_for_runs_recorded_before_it(registry, old_store, tmp_path, capsys):
    assert "first_task_final" not in old_store.runs()[0]["metrics"]
    register_metric("first_task_final", label="first task final", higher_is_better=True,
                    description="accuracy on the first task after the last one")(first_task_final)
    values = [0.5, 0.4, 0.3]  # naive_R(seed)[1][0]
    md = write_report(old_store, tmp_path / "rep", formats=("markdown",))["markdown"].read_text()
    header = next(line for line in md.splitlines() if line.startswith("| method | runs |"))
    assert "first task final % (mean ± 95% CI)" in header
    naive = next(line for line in md.splitlines() if line.startswith("| naive | 3 |"))
    cells = [c.strip() for c in naive.split("|")[1:-1]]
    col = [c.strip() for c in header.split("|")[1:-1]].index("first task final % (mean ± 95% CI)")
    assert cells[col] == format_mean_ci(values)
    assert cells[2] == format_mean_ci([np.mean(naive_R(s)[-1]) for s in range(3)])  # avg acc from R, not 0.0123
    joint = next(line for line in md.splitlines() if line.startswith("| joint | 3 |"))
    assert [c.strip() for c in joint.split("|")[1:-1]][col] == "—"  # trained once: avg acc only
    assert "first task final %: accuracy on the first task after the last one" in md  # its description

    assert main(["report", str(old_store.path), "--format", "csv", "--out", "-"]) == 0
    rows = {r["method"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    mean, half = confidence_interval([100 * v for v in values])
    assert float(rows["naive"]["first_task_final_pct_mean"]) == pytest.approx(mean, abs=1e-3)
    assert float(rows["naive"]["first_task_final_pct_ci95"]) == pytest.approx(half, abs=1e-3)
    assert rows["joint"]["first_task_final_pct_mean"] == ""
    assert "first task final" in render_table(old_store, "latex")

    buf = io.StringIO()
    Console(file=buf, width=250).print(results_table(old_store.runs()))
    assert "first task final %" in buf.getvalue() and format_mean_ci(values) in buf.getvalue()


def test_a_metric_needing_the_baseline_skips_runs_without_one(registry, tmp_path):
    register_metric("gain", label="gain over untrained", higher_is_better=True, percent=False, needs_baseline=True,
                    description="final accuracy minus the untrained model's, summed")(
        lambda R, b: float(np.sum(np.array(R[-1]) - np.array(b))))
    with_base = fake_run("naive", 0, naive_R(0), 1.0) | {"baseline": [0.1, 0.1]}
    without = with_base | {"baseline": None}
    assert metrics_of(with_base)["gain"] == pytest.approx((0.5 - 0.1) + (0.9 - 0.1))
    assert "gain" not in metrics_of(without) and "fwt" not in metrics_of(without)
    s = Store(tmp_path / "b.db")
    s.save_run(fake_run("naive", 0, naive_R(0), 1.0))  # stored without a baseline row
    s.save_run(fake_run("naive", 0, naive_R(0), 1.0, benchmark="b2") | {"baseline": [0.1, 0.1]})
    rows = {r["benchmark"]: r for r in csv.DictReader(io.StringIO(render_table(s, "csv")))}
    assert rows["synthetic"]["gain_mean"] == rows["synthetic"]["fwt_pct_mean"] == ""
    assert rows["synthetic"]["avg_acc_pct_mean"] != ""
    assert float(rows["b2"]["gain_mean"]) == pytest.approx(1.2) and float(rows["b2"]["fwt_pct_mean"]) == 0.0


PLUGIN = '''
from retain.metrics.registry import register_metric


@register_metric("worst_final", label="worst final", higher_is_better=True,
                 description="the lowest accuracy of any task after the last one")
def worst_final(R, baseline):
    return min(R[-1])
'''


@pytest.fixture
def site(tmp_path, monkeypatch, registry):
    """A folder on sys.path to install a package into; its module is forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(METRICS, "_loaded", False)  # as in a fresh process
    yield tmp_path
    sys.modules.pop("retain_metric_plugin", None)


def _install(tmp_path, entry: str, module_text: str | None) -> None:
    """A package installed in ``tmp_path`` as pip would leave it: a module and a dist-info
    folder whose entry_points.txt declares ``entry`` in the group retain.metrics."""
    if module_text is not None:
        (tmp_path / "retain_metric_plugin.py").write_text(module_text)
    info = tmp_path / "retain_metric_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: retain-metric-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[retain.metrics]\n{entry}\n")


def test_metrics_from_an_installed_package_load_when_first_consulted(site):
    _install(site, "worst = retain_metric_plugin", PLUGIN)
    assert "worst_final" not in METRICS._items  # nothing is imported before the registry is consulted
    assert compute_metrics([[0.9, 0.1], [0.4, 0.8]], None)["worst_final"] == pytest.approx(0.4)
    assert METRICS.get("worst_final").title == "worst final %" and "worst_final" in METRICS.names()


def test_an_entry_point_may_name_the_decorated_function_not_a_bare_one(site):
    _install(site, "worst = retain_metric_plugin:worst_final\nbare = retain_metric_plugin:bare",
             PLUGIN + "\n\ndef bare(R, baseline):\n    return 0.0\n")
    with pytest.raises(ConfigError, match="metric plugin 'bare': 'bare' is not registered by @register_metric"):
        METRICS.names()
    assert "worst_final" in METRICS._items and "worst" not in METRICS._items  # under its own name, as a Metric


def test_a_broken_metric_plugin_is_one_line_naming_it(site):
    _install(site, "broken = retain_metric_plugin_missing", None)
    with pytest.raises(ConfigError, match=r"metric plugin 'broken' \(retain_metric_plugin_missing\) failed to load: "
                                          r"ModuleNotFoundError"):
        METRICS.names()


def test_sudden_forgetting_comes_from_the_matrix_once(tmp_path):
    R = naive_R(0)  # task 1 falls 40 points when task 2 is trained
    stored = forgetting.sudden_forgetting_events(R, 1)  # what the probes stored at run time
    collapse = {"task": 1, "kind": "plasticity_collapse", "value": 0.2, "threshold": 0.05, "message": "units died"}
    s = Store(tmp_path / "f.db")
    s.save_run(fake_run("naive", 0, R, 1.0, events=stored + [collapse]))  # recorded with the probes' events
    s.save_run(fake_run("naive", 1, R, 1.0))  # recorded without any: the matrix still tells
    s.save_run(fake_run("joint", 0, [[0.0, 0.0], [0.9, 0.8]], 1.0, metrics={"avg_acc": 0.85}))
    runs = s.runs()
    kinds = [[e["kind"] for e in events_of(r, s.events(r["id"]))] for r in runs]
    assert kinds == [["sudden_forgetting", "plasticity_collapse"], ["sudden_forgetting"], []]
    md = write_report(s, tmp_path / "rep", formats=("markdown",))["markdown"].read_text()
    assert "| naive | sudden_forgetting | 2/2 | 2 | sudden forgetting: training task 2 dropped task 1 by 40.0" in md
    assert "| naive | plasticity_collapse | 1/2 | 2 | units died |" in md
    records = [r | {"events": s.events(r["id"])} for r in runs]
    lines = warning_lines(records, "all")
    forgot = [line for line in lines if "sudden forgetting" in line]
    assert len(forgot) == 1 and "[2 events in 2/2 runs]" in forgot[0], lines  # one event a run, not two


def test_a_ranking_by_a_lower_is_better_metric_puts_the_best_first():
    def run(strategy, seed, f):
        return RunRecord(run_key=f"{strategy}-{seed}", study="", benchmark="b", strategy=strategy, seed=seed,
                         status="finished", config={}, baseline=None, acc_matrix=[[0.9, 0.1], [0.9 - f, 0.9]])

    recs = [run("a", s, f) for s, f in enumerate((0.10, 0.20, 0.15))]
    recs += [run("b", s, f) for s, f in enumerate((0.12, 0.22, 0.17))]
    (o,) = [o for o in overlapping_rankings(recs) if o.metric == "forgetting"]
    assert o.strategies == ("a", "b")  # less forgetting first


DOC = """Replay with a twist.

    A second paragraph that the report leaves out."""


def test_strategies_describe_themselves(monkeypatch):
    for name in STRATEGIES.names():
        assert summary(name) != "—" and cost(name) != "—", name  # every built-in says what it is and costs
        assert "\n" not in summary(name) and "  " not in summary(name)
    assert summary("der") == " ".join(STRATEGIES.get("der").description.split())  # its description
    assert summary("naive") == first_paragraph(STRATEGIES.get("naive").__doc__)
    assert summary("joint").startswith("Re-initialise at the last task and train once on all")
    assert summary("no-such-method") == "—" and cost("no-such-method") == "—"

    monkeypatch.setattr(STRATEGIES, "_items", dict(STRATEGIES._items))
    twist = type("Twist", (ER,), {"__doc__": DOC})
    register_strategy("twist")(twist)  # as a plugin registers it
    silent = register_strategy("silent")(type("Silent", (ER,), {}))  # no docstring: not described as ER
    priced = register_strategy("priced")(type("Priced", (Strategy,), {
        "__doc__": "Ignored.", "description": "  Says   what it\n does.  ", "cost": "one forward"}))
    assert summary("twist") == "Replay with a twist." and cost("twist") == "—"
    assert summary("silent") == "—" and cost("silent") == "—" and silent.cost  # inherited cost not used
    assert summary("priced") == "Says what it does." and cost("priced") == "one forward"
    assert first_paragraph(textwrap.dedent(DOC)) == "Replay with a twist." and first_paragraph(None) == ""
    assert priced.name == "priced"
