"""The run loop end to end on the embedded and synthetic benchmarks."""

import json

import numpy as np
import pytest
import torch

from retain.benchmarks import make_benchmark
from retain.cli.main import main
from retain.config.run import RunConfig
from retain.store import Store
from retain.training.loop import iter_batches, run_experiment


def test_permuted_digits_shares_one_copy_of_the_data():
    b = make_benchmark("permuted-digits", tasks=4, seed=0)
    assert len(b) == 4 and b.scenario == "domain-il" and b.num_classes == 10
    assert all(e.train_x.data_ptr() == b.experiences[0].train_x.data_ptr() for e in b.experiences)
    assert b.experiences[0].train_x.dtype == torch.uint8
    x0 = b.experiences[0].prepare(b.experiences[0].train_x[:8])
    x1 = b.experiences[1].prepare(b.experiences[1].train_x[:8])
    assert x0.dtype == torch.float32 and x0.max() <= 1.0
    assert torch.equal(x0.sort(1).values, x1.sort(1).values) and not torch.equal(x0, x1)


def test_split_and_task_il_scenarios():
    b = make_benchmark("split-digits", tasks=5, seed=0, scenario="task-il")
    assert [e.classes for e in b.experiences] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    assert all(set(e.train_y.unique().tolist()) == set(e.classes) for e in b.experiences)
    p = make_benchmark("permuted-digits", tasks=3, seed=0, scenario="task-il")
    assert p.num_classes == 30 and p.experiences[2].classes == tuple(range(20, 30))
    assert p.experiences[2].train_y.min() == 20


def test_task_order_is_a_seeded_permutation():
    b = make_benchmark("split-digits", tasks=5, seed=0)
    o1, o2 = b.with_order(1), b.with_order(1)
    assert [e.classes for e in o1.experiences] == [e.classes for e in o2.experiences]
    assert sorted(e.origin for e in o1.experiences) == [0, 1, 2, 3, 4]
    assert [e.task_id for e in o1.experiences] == [0, 1, 2, 3, 4]
    assert [e.classes for e in b.with_order(0).experiences] == [e.classes for e in b.experiences]


def test_joint_batches_mix_tasks_with_their_own_transform():
    b = make_benchmark("permuted-digits", tasks=2, seed=0)
    seen = sum(len(batch.y) for batch in iter_batches(b.experiences, 64, torch.Generator().manual_seed(0)))
    assert seen == 2 * b.experiences[0].num_train


def test_naive_forgets_and_joint_does_not():
    naive = run_experiment(RunConfig(strategy="naive", tasks=4))
    joint = run_experiment(RunConfig(strategy="joint", tasks=4))
    assert naive.metrics["learning_acc"] > 0.7
    assert naive.metrics["forgetting"] > 0.2  # catastrophic forgetting, measured
    assert joint.metrics["avg_acc"] > naive.metrics["avg_acc"] + 0.2
    assert len(naive.acc_matrix) == 4 and all(len(r) == 4 for r in naive.acc_matrix)


def test_same_seed_gives_identical_matrix():
    a = run_experiment(RunConfig(benchmark="synthetic", seed=3))
    b = run_experiment(RunConfig(benchmark="synthetic", seed=3))
    c = run_experiment(RunConfig(benchmark="synthetic", seed=4))
    assert a.acc_matrix == b.acc_matrix
    assert a.acc_matrix != c.acc_matrix or a.baseline != c.baseline


def test_cli_run_writes_store_and_summary(tmp_path, capsys):
    rc = main(["run", "--benchmark", "synthetic", "--strategy", "naive", "--seeds", "2", "--out",
               str(tmp_path), "--quiet"])
    assert rc == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [s["seed"] for s in summary] == [0, 1]
    assert np.array(summary[0]["acc_matrix"]).shape == (2, 2)
    runs = Store(tmp_path / "retain.db").runs()
    stored = {r["run_key"]: r["acc_matrix"] for r in runs}  # the store keeps runs in the order they finished
    assert len(runs) == 2 and all(stored[s["run_key"]] == s["acc_matrix"] for s in summary)
    # Running again reuses the finished runs instead of training twice.
    assert main(["run", "--benchmark", "synthetic", "--strategy", "naive", "--seeds", "2", "--out",
                 str(tmp_path), "--quiet"]) == 0
    assert len(Store(tmp_path / "retain.db").runs()) == 2


@pytest.mark.parametrize("argv, needle", [
    (["--benchmark", "nope"], "unknown benchmark 'nope'"),
    (["--strategy", "nope"], "unknown strategy 'nope'"),
    (["--lr", "nan"], "lr must be a finite number"),
    (["--epochs", "0"], "epochs must be an integer >= 1"),
    (["--tasks", "3", "--benchmark", "split-digits"], "--tasks must be one of"),
    (["--benchmark", "permuted-mnist", "--data-dir", "/nonexistent"], "does not exist"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, argv, needle):
    rc = main(["run", "--out", str(tmp_path / "out"), "--quiet", *argv])
    assert rc == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "summary.json").exists()


def test_cli_benchmark_and_backbone_options(tmp_path):
    assert main(["run", "--benchmark", "permuted-digits", "--strategy", "naive", "--seeds", "1", "--tasks", "2",
                 "--benchmark-option", "permute_fraction=0", "--out", str(tmp_path), "--quiet", "--no-report"]) == 0
    run = Store(tmp_path / "retain.db").runs()[0]
    assert run["config"]["benchmark_options"] == {"permute_fraction": 0}
    R = run["acc_matrix"]
    assert abs(R[1][0] - R[1][1]) < 1e-9  # fraction 0: both tasks are the same images
    # an option the backbone does not take is refused (exit 2), not a crash
    assert main(["run", "--benchmark", "synthetic", "--strategy", "naive", "--seeds", "1", "--backbone-option",
                 "depth=3", "--out", str(tmp_path / "b"), "--quiet"]) == 2
