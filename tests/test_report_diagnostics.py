"""The report's diagnostics: a fact of the benchmark is one row, not one row a method, and a
method that barely learns is told to loosen its constraint, not to raise it."""

from __future__ import annotations

from retain.diagnostics import dissimilarity
from retain.report.build import _diagnostics
from retain.report.data import group_runs
from retain.report.document import Table
from retain.report.tables import ALL_METHODS, diagnostics_table
from retain.store.record import RunRecord


def _run(i: int, strategy: str, learn: float) -> RunRecord:
    R = [[learn, 0.0, 0.0], [learn - 0.3, learn, 0.0], [learn - 0.35, learn - 0.3, learn]]
    return RunRecord(run_key=f"k{i}", study="", benchmark="b", strategy=strategy, seed=i % 3, status="finished",
                     config={"strategy": strategy}, acc_matrix=R, baseline=[0.1] * 3, id=i)


class _Store:
    def __init__(self, events):
        self.stored = events

    def events(self, run_id):
        return self.stored.get(run_id, [])


def _runs():
    strategies = ["naive", "ewc", "er", "der", "si", "lwf", "agem", "derpp", "joint"]
    return [_run(3 * k + s, name, 0.40 if name == "ewc" else 0.95) for k, name in enumerate(strategies)
            for s in range(3)]


def test_a_dissimilarity_fact_is_one_row_for_the_benchmark():
    runs = _runs()
    fact = dissimilarity.dissimilarity_events({"dissim_proto_prev": 0.89}, 1)[0]
    (groups,) = group_runs(runs).values()
    table = diagnostics_table(groups, {r.id: [fact] for r in runs})
    rows = [row for row in table.rows if row[1] == "task_dissimilarity"]
    assert rows == [[ALL_METHODS, "task_dissimilarity", f"{len(runs)}/{len(runs)}", "2", fact["message"]]]


def test_the_report_tells_a_method_that_barely_learns_to_loosen():
    runs = _runs()
    (groups,) = group_runs(runs).values()
    blocks = _diagnostics(_Store({}), groups, [])
    (table,) = [b for b in blocks if isinstance(b, Table)]
    ewc = [row for row in table.rows if row[0] == "ewc"]
    assert any(row[1] == "low_learning_accuracy" and "lower the penalty" in row[4] for row in ewc)
    assert not any("raise the penalty" in row[4] for row in ewc)
    assert any("raise the penalty" in row[4] for row in table.rows if row[0] == "si")  # si learns: advice stays
