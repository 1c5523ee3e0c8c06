"""Joint training as in the DER paper and Mammoth: re-initialise at the last task and train once on
every task's data; the old behaviour (keep training on everything seen so far) is `cumulative`."""

from __future__ import annotations

import torch

from retain.config.run import RunConfig
from retain.strategies import STRATEGIES
from retain.strategies.base import Strategy
from retain.training.loop import build, iter_batches, run_experiment

CFG = dict(benchmark="synthetic", tasks=3, epochs=2, seed=5)


def counting(monkeypatch, cls: type[Strategy]) -> list[list[int]]:
    """Patch ``cls.observe`` to record the labels it is given, one list per task (by ``task``)."""
    seen: list[list[int]] = [[] for _ in range(CFG["tasks"])]
    observe = cls.observe

    def spy(self, x, y, task, *, plain=None):
        seen[task] += y.tolist()
        return observe(self, x, y, task, plain=plain)

    monkeypatch.setattr(cls, "observe", spy)
    return seen


def final_weights(cfg: RunConfig):
    kept = {}

    def keep(ctx):
        kept["state"] = {k: v.clone() for k, v in ctx.strategy.model.state_dict().items()}

    result = run_experiment(cfg, after_task=[keep])
    return result, kept["state"]


def test_joint_equals_a_fresh_model_of_the_seed_trained_on_all_data():
    cfg = RunConfig(strategy="joint", **CFG).resolve()  # the batch size and epochs it runs with
    result, state = final_weights(cfg)
    # By hand: the seed's freshly built model, `epochs` shuffled passes over the union of all tasks.
    bench, fresh = build(cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    for _ in range(cfg.epochs):
        for x, y, plain in iter_batches(bench.experiences, cfg.batch_size, gen):
            fresh.observe(x, y, len(bench) - 1, plain=plain)
    assert state.keys() == fresh.model.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in fresh.model.state_dict().items())
    assert result.acc_matrix[-1][0] > 0.6


def test_joint_does_not_depend_on_what_happened_before_the_last_task():
    cfg = RunConfig(strategy="joint", **CFG)
    _, clean = final_weights(cfg)
    kept = {}

    def scramble_then_keep(ctx):  # scramble the weights after every task but the last
        if ctx.task == CFG["tasks"] - 1:
            kept.update({k: v.clone() for k, v in ctx.strategy.model.state_dict().items()})
            return
        with torch.no_grad():
            for p in ctx.strategy.model.parameters():
                p.add_(torch.randn_like(p))

    run_experiment(cfg, after_task=[scramble_then_keep])
    assert all(torch.equal(kept[k], v) for k, v in clean.items())


def test_joint_trains_once_on_all_data_and_reports_only_final_accuracy(monkeypatch):
    seen = counting(monkeypatch, STRATEGIES.get("joint"))
    result = run_experiment(RunConfig(strategy="joint", **CFG))
    bench, _ = build(RunConfig(strategy="joint", **CFG))
    labels = torch.cat([e.train_y for e in bench.experiences])
    assert seen[0] == [] and seen[1] == [], "nothing is trained before the last task"
    assert len(seen[2]) == CFG["epochs"] * len(labels)
    assert torch.equal(torch.bincount(torch.tensor(seen[2])), CFG["epochs"] * torch.bincount(labels))
    assert result.acc_matrix[0] == result.baseline == result.acc_matrix[1], "rows before the last: untrained model"
    assert set(result.metrics) == {"avg_acc"}
    assert result.metrics["avg_acc"] == sum(result.acc_matrix[-1]) / CFG["tasks"]
    assert result.losses[:2] == [None, None] and result.losses[2] > 0  # no training, no loss


def test_cumulative_keeps_training_on_everything_seen_so_far(monkeypatch):
    seen = counting(monkeypatch, STRATEGIES.get("cumulative"))
    cfg = RunConfig(strategy="cumulative", **CFG)
    result = run_experiment(cfg)
    bench, _ = build(cfg)
    sizes = [e.num_train for e in bench.experiences]
    assert [len(s) for s in seen] == [CFG["epochs"] * sum(sizes[: t + 1]) for t in range(CFG["tasks"])]
    assert STRATEGIES.get("cumulative").family == "bound" and not STRATEGIES.get("cumulative").trains_once
    assert {"avg_acc", "forgetting", "bwt", "fwt", "learning_acc"} <= set(result.metrics)
    assert result.acc_matrix[0][0] > 0.6  # trained from the first task on
