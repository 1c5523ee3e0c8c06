"""Replay on augmented benchmarks, as in Mammoth: buffers hold the inputs before augmentation and
replayed samples are augmented afresh each time they are drawn; DER keeps the logits of the
augmented input. Without augmentation nothing extra is made."""

from __future__ import annotations

import pytest
import torch

from retain.benchmarks.base import Experience
from retain.config.run import RunConfig
from retain.data.augment import RandomCropFlip
from retain.data.transforms import ToFloat
from retain.models import BACKBONES
from retain.strategies import STRATEGIES
from retain.training.loop import iter_batches, train_task

REPLAY = ["er", "der", "derpp", "agem", "ode-memory"]


def image_task(*, augment: bool, n: int = 48, seed: int = 0) -> Experience:
    """``n`` random 1 x 8 x 8 uint8 images of 4 classes; crop (padding 2) and flip when augmenting."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 1, 8, 8), generator=g, dtype=torch.uint8)
    y = torch.arange(n) % 4
    aug = RandomCropFlip(padding=2, flip_p=0.5, seed=seed + 1, fill=0.5) if augment else None
    return Experience(0, (0, 1, 2, 3), x, y, x[:8], y[:8], ToFloat(), name="images", augment=aug)


def make(name: str, **params):
    torch.manual_seed(0)
    model = BACKBONES.get("mlp")((1, 8, 8), 4, hidden=(16,))
    cls = STRATEGIES.get(name)
    cfg = cls.Config.from_params(name, {"buffer_size": 24, "replay_batch_size": 8, **params})
    return cls(model, cfg, make_optimizer=lambda p: torch.optim.SGD(p, lr=0.05), num_classes=4)


def train(strategy, exp: Experience, *, task_free: bool = False, epochs: int = 2) -> None:
    cfg = RunConfig(benchmark="synthetic", epochs=epochs, batch_size=8, seed=0, task_free=task_free)
    steps = epochs * -(-exp.num_train // cfg.batch_size)
    train_task(cfg, strategy, [exp], 0, [exp], torch.Generator().manual_seed(0), None, steps, lambda: None)


def matches(rows: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    """For each of ``rows``, the index of the identical row of ``pool`` (-1 when there is none)."""
    same = (rows.flatten(1)[:, None, :] == pool.flatten(1)[None, :, :]).all(-1)
    return torch.where(same.any(1), same.float().argmax(1), torch.tensor(-1))


@pytest.mark.parametrize("name", REPLAY)
@pytest.mark.parametrize("task_free", [False, True])
def test_buffer_holds_exactly_the_non_augmented_inputs(name, task_free):
    exp = image_task(augment=True)
    s = make(name)
    train(s, exp, task_free=task_free)
    assert s.augment is exp.augment, "the loop tells the strategy the augmentation, task-free too"
    plain = exp.transform(exp.train_x)
    stored = s.buffer.x[: len(s.buffer)]
    where = matches(stored, plain)
    assert len(s.buffer) == 24 and bool((where >= 0).all()), "every buffer row is a transformed, non-augmented input"
    assert torch.equal(exp.train_y[where], s.buffer.y[: len(s.buffer)])


@pytest.mark.parametrize("name", REPLAY)
def test_replayed_samples_are_augmented_afresh_at_every_draw(name):
    exp = image_task(augment=True)
    s = make(name)
    train(s, exp)
    k = len(s.buffer)
    state = exp.augment.generator.get_state()
    first = s.replay(k)
    # Exactly the benchmark's augmentation of the stored (plain) rows, with its next random draws.
    check = RandomCropFlip(padding=2, flip_p=0.5, fill=0.5)
    check.generator.set_state(state)
    assert torch.equal(first.x, check(s.buffer.x[first.index]))
    second = s.replay(k)
    order = torch.argsort(second.index)[torch.argsort(torch.argsort(first.index))]  # align item by item
    assert torch.equal(second.index[order], first.index)
    differ_from_stored = (first.x != s.buffer.x[first.index]).flatten(1).any(1)
    differ_between_draws = (first.x != second.x[order]).flatten(1).any(1)
    # The identity crop without a flip has probability 1/50 per draw: nearly every row must differ.
    assert differ_from_stored.sum() >= k - 3 and differ_between_draws.sum() >= k - 3


def test_der_stores_the_logits_of_the_augmented_input():
    exp = image_task(augment=True)
    s = make("der")
    for group in s.optimizer.param_groups:
        group["lr"] = 0.0  # a fixed model: the stored logits can be recomputed exactly
    seen = []
    observe = s.observe

    def spy(x, y, task, *, plain=None):
        seen.append((x, plain))
        return observe(x, y, task, plain=plain)

    s.observe = spy
    train(s, exp, epochs=1)  # each input seen once, so its stored row names its augmented version
    xs, plains = torch.cat([x for x, _ in seen]), torch.cat([p for _, p in seen])
    where = matches(s.buffer.x, plains)
    assert bool((where >= 0).all())
    with torch.no_grad():
        on_augmented, on_plain = s.model(xs[where]), s.model(plains[where])
    torch.testing.assert_close(s.buffer.logits, on_augmented)
    assert not torch.allclose(s.buffer.logits, on_plain)


def test_online_lora_hard_buffer_keeps_non_augmented_inputs():
    pytest.importorskip("peft")
    exp = image_task(augment=True)
    s = make("online-lora", hard_buffer=4)
    train(s, exp)
    assert len(s.hard) == 4 and bool((matches(s.hard.x, exp.transform(exp.train_x)) >= 0).all())


def test_without_augmentation_batches_carry_no_copy_and_the_buffer_stores_the_inputs():
    exp = image_task(augment=False)
    batches = list(iter_batches([exp], 8, torch.Generator().manual_seed(0)))
    assert all(b.plain is None for b in batches)
    assert torch.equal(torch.cat([b.x for b in batches]).sort(0).values,
                       exp.transform(exp.train_x).sort(0).values)
    s = make("er")
    train(s, exp)
    assert s.augment is None
    assert bool((matches(s.buffer.x, exp.transform(exp.train_x)) >= 0).all())
    drawn = s.replay(8)
    assert torch.equal(drawn.x, s.buffer.x[drawn.index]), "nothing to augment: replay returns what is stored"


def test_mixed_batches_keep_each_tasks_plain_inputs():
    """Union batches (cumulative, joint) mix an augmented and a plain task: ``plain`` covers both."""
    aug, flat = image_task(augment=True, seed=0), image_task(augment=False, seed=5)
    for b in iter_batches([aug, flat], 16, torch.Generator().manual_seed(0)):
        assert b.plain is not None and b.plain.shape == b.x.shape
    plain_all = torch.cat([b.plain for b in iter_batches([aug, flat], 16, torch.Generator().manual_seed(0))])
    both = torch.cat([aug.transform(aug.train_x), flat.transform(flat.train_x)])
    assert bool((matches(plain_all, both) >= 0).all())
