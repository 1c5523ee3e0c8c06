"""Costs of runs trained as one vectorised ensemble are told as what they are: a member's time is
its 1/N share of the ensemble's (marked, no ± 0.0), and compute cost compares like with like."""

from __future__ import annotations

import io

from rich.console import Console

from retain.cli.console import results_table
from retain.report.data import group_runs
from retain.report.tables import comparison_table
from retain.report.tables import results_table as report_results
from retain.store.record import RunRecord

CONFIG = {"tasks": 2, "scenario": "task-il", "backbone": "mlp", "hidden": [100, 100], "epochs": 1, "lr": 0.1,
          "task_free": False}


def _run(strategy: str, seed: int, seconds: float, members: int = 1) -> RunRecord:
    extra = {"batched": {"members": members, "seeds": list(range(members)), "orders": [0] * members}} \
        if members > 1 else {}
    return RunRecord(run_key=f"{strategy}{seed}", study="", benchmark="b", strategy=strategy, seed=seed,
                     status="finished", config={**CONFIG, "strategy": strategy, "seed": seed},
                     acc_matrix=[[0.9, 0.1], [0.5 + 0.01 * seed, 0.9]], baseline=[0.1, 0.1],
                     task_seconds=[seconds / 2, seconds / 2], wall_seconds=seconds, extra=extra)


def _runs(derpp_members: int) -> list[RunRecord]:
    naive = [_run("naive", s, 2.0 + 0.3 * s) for s in range(3)]
    return naive + [_run("derpp", s, 1.5, derpp_members) for s in range(3)]


def _terminal(records) -> str:
    buf = io.StringIO()
    Console(file=buf, width=80).print(results_table(records))
    return buf.getvalue()


def test_the_terminal_marks_a_members_time_as_its_share_and_fits_80_columns():
    text = _terminal(_runs(3))
    derpp = next(line for line in text.splitlines() if line.startswith("derpp"))
    assert derpp.rstrip().endswith("1.5*3") and "± 0.0   1.5" not in derpp
    assert "trained as one vectorised ensemble of N runs" in " ".join(text.split())
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    assert "*" not in _terminal(_runs(1)).splitlines()[2]


def test_the_report_compares_costs_only_like_for_like():
    (groups,) = group_runs(_runs(3)).values()
    by = {row[0]: row for row in comparison_table(groups).rows}
    assert by["derpp"][2].startswith("— (not like for like: derpp trained in ensembles of 3, naive one by one")
    table = report_results(groups)
    derpp = next(row for row in table.rows if row[0] == "derpp")
    assert any("(1/3 of an ensemble)" in c for c in derpp) and not any(c.endswith("± 0.00") for c in derpp[-5:])
    (same,) = group_runs(_runs(1)).values()
    ratio = {row[0]: row[2] for row in comparison_table(same).rows}["derpp"]
    assert ratio == f"{1.5 / 2.3:.2f}x"


def test_no_note_that_a_method_without_a_batched_version_trains_one_by_one():
    from retain.config.run import RunConfig
    from retain.ensemble.support import plan

    joint = [RunConfig(benchmark="synthetic", strategy="joint", seed=s).resolve() for s in range(3)]
    blurred = [RunConfig(benchmark="synthetic", strategy="naive", seed=s, blur=0.2).resolve() for s in range(2)]
    jobs, notes = plan(joint + blurred)
    assert jobs == joint + blurred  # all one by one
    assert notes == ["2 run(s) of naive train one by one, not batched: --blur"]  # a setting the user chose


def test_the_cost_plot_marks_runs_timed_as_ensemble_shares(tmp_path, monkeypatch):
    from retain.report import plots_summary

    (groups,) = group_runs(_runs(3)).values()
    seen = {}
    save = plots_summary.save
    monkeypatch.setattr(plots_summary, "save", lambda fig, path: (seen.setdefault("fig", fig), save(fig, path))[1])
    plots_summary.accuracy_vs_cost(groups, tmp_path / "c.png", {g.label: ("#000000", "o") for g in groups})
    labels = {t.get_text() for t in seen["fig"].axes[0].texts}
    assert labels == {"naive", "derpp *3"}
