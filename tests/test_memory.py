"""Replay buffers: Algorithm R is exact and unbiased, sampling is without replacement, memory
is bounded, the class-balanced buffer balances, statistics and checkpoints are right."""

import io
import math

import pytest
import torch
from scipy import stats as sstats

import retain.memory.reservoir as reservoir_module
from retain.memory import ClassBalancedBuffer, ReservoirBuffer, buffer_stats, normalized_entropy
from retain.memory.reservoir import last_writer, reservoir_slots


def sequential_algorithm_r(stream_len: int, capacity: int, u: torch.Tensor) -> list[int]:
    """The textbook one-item-at-a-time Algorithm R, fed the same uniform draws."""
    slots = [-1] * capacity
    for n in range(stream_len):
        if n < capacity:
            slots[n] = n
        else:
            j = math.floor(float(u[n]) * (n + 1))
            if j < capacity:
                slots[j] = n
    return slots


@pytest.mark.parametrize("capacity,batch", [(7, 1), (7, 3), (20, 64), (50, 13)])
def test_batched_insert_equals_sequential_algorithm_r(capacity, batch):
    n = 400
    u = torch.rand(n, generator=torch.Generator().manual_seed(capacity * batch), dtype=torch.float64)
    held = torch.full((capacity,), -1, dtype=torch.int64)
    for start in range(0, n, batch):
        chunk = u[start: start + batch]
        slots, items = last_writer(reservoir_slots(start, capacity, chunk), capacity)
        held[slots] = items + start
    assert held.tolist() == sequential_algorithm_r(n, capacity, u)


def inclusion_counts(capacity: int, stream_len: int, trials: int, batch: int) -> torch.Tensor:
    """How often each stream item ends up in a ReservoirBuffer over ``trials`` seeded streams."""
    counts = torch.zeros(stream_len, dtype=torch.int64)
    ids = torch.arange(stream_len)
    for trial in range(trials):
        buf = ReservoirBuffer(capacity, seed=trial)
        for start in range(0, stream_len, batch):
            buf.add(ids[start: start + batch].unsqueeze(1), ids[start: start + batch] % 10)
        counts[buf.x[:, 0]] += 1
    return counts


def uniformity_pvalue(counts: torch.Tensor, trials: int, capacity: int) -> float:
    """Chi-square test of "each item kept with probability M/n" against the observed counts.

    Each count is Binomial(trials, M/n); the sum over items of (O - E)^2 / (E (1 - M/n)) is then
    approximately chi-square with n - 1 degrees of freedom (one lost to the fixed total)."""
    n = len(counts)
    p = capacity / n
    expected = trials * p
    stat = float(((counts.double() - expected) ** 2).sum()) / (expected * (1 - p))
    return float(sstats.chi2.sf(stat, df=n - 1))


def _batch_shared_draw(seen, capacity, u):
    """A plausible vectorisation bug: every item of a batch uses the batch's first stream index."""
    n = torch.full((len(u),), seen, dtype=torch.int64)
    j = torch.floor(u * (n + 1).double()).long()
    slots = torch.where(n < capacity, torch.arange(seen, seen + len(u)), j)
    return torch.where(slots < capacity, slots, torch.full_like(slots, -1))


def _always_replace(seen, capacity, u):
    """Another bug: once full, overwrite a random slot every time (favours recent items)."""
    n = torch.arange(seen, seen + len(u))
    return torch.where(n < capacity, n, torch.floor(u * capacity).long())


@pytest.mark.parametrize("biased", [None, _batch_shared_draw, _always_replace])
def test_reservoir_keeps_every_item_with_probability_m_over_n(monkeypatch, biased):
    capacity, stream_len, trials, batch = 40, 400, 300, 32
    if biased is not None:
        monkeypatch.setattr(reservoir_module, "reservoir_slots", biased)
    counts = inclusion_counts(capacity, stream_len, trials, batch)
    assert int(counts.sum()) == trials * capacity
    pvalue = uniformity_pvalue(counts, trials, capacity)
    if biased is None:
        assert pvalue > 1e-3, f"reservoir looks biased (p = {pvalue:.2e})"
    else:  # the same test must reject a biased implementation
        assert pvalue < 1e-6, f"{biased.__name__} was not detected (p = {pvalue:.2e})"


def test_sampling_is_without_replacement_and_memory_is_bounded():
    buf = ReservoirBuffer(30, seed=0)
    for _ in range(50):
        buf.add(torch.randint(0, 255, (16, 8), dtype=torch.uint8), torch.randint(0, 5, (16,)), task=2)
    assert buf.x.shape == (30, 8) and buf.x.dtype == torch.uint8, "storage dtype and size fixed"
    assert len(buf) == 30 and buf.seen == 800
    draw = buf.sample(20)
    assert len(set(draw.index.tolist())) == 20
    assert len(buf.sample(100).index) == 30, "asking for more returns the whole buffer once"
    assert (draw.task == 2).all() and draw.logits is None


def test_logits_are_stored_with_their_samples():
    buf = ReservoirBuffer(8, seed=1)
    x = torch.arange(8.0).unsqueeze(1)
    buf.add(x, torch.zeros(8, dtype=torch.int64), logits=x * 10)
    draw = buf.sample(8)
    assert torch.equal(draw.logits, draw.x * 10)


def test_class_balanced_buffer_rebalances_as_classes_arrive():
    buf = ClassBalancedBuffer(12, seed=0)
    for _ in range(5):
        buf.add(torch.randn(10, 3), torch.zeros(10, dtype=torch.int64))
    assert torch.bincount(buf.labels()).tolist() == [12]
    for cls in (1, 2):
        for _ in range(5):
            buf.add(torch.randn(10, 3), torch.full((10,), cls))
    assert torch.bincount(buf.labels()).tolist() == [4, 4, 4]
    buf.add(torch.randn(10, 3), torch.full((10,), 3))
    assert sorted(torch.bincount(buf.labels()).tolist()) == [3, 3, 3, 3]
    assert len(buf.sample(12).index) == 12


def test_class_balanced_buffer_is_balanced_where_reservoir_is_not():
    y = torch.cat([torch.zeros(900, dtype=torch.int64), torch.ones(100, dtype=torch.int64)])
    res, bal = ReservoirBuffer(100, seed=0), ClassBalancedBuffer(100, seed=0)
    for buf in (res, bal):
        for i in range(0, 1000, 50):
            buf.add(torch.randn(50, 2), y[i: i + 50])
    assert torch.bincount(bal.labels()).tolist() == [50, 50]
    assert buffer_stats(bal)["class_entropy"] == pytest.approx(1.0)
    assert buffer_stats(res)["class_entropy"] < 0.7, "an imbalanced stream gives an imbalanced reservoir"


def test_stats_fill_counts_entropy_and_coverage():
    buf = ReservoirBuffer(10, seed=0)
    buf.add(torch.randn(4, 2), torch.tensor([0, 0, 1, 1]), task=0)
    s = buffer_stats(buf)
    assert s["fill"] == pytest.approx(0.4) and s["seen"] == 4
    assert s["class_counts"] == {0: 2, 1: 2} and s["task_counts"] == {0: 4}
    assert s["class_entropy"] == pytest.approx(1.0) and s["class_coverage"] == 1.0
    buf.seen_per_class = torch.tensor([2, 2, 5, 5])  # the stream showed classes the buffer lacks
    s = buffer_stats(buf)
    assert s["class_coverage"] == 0.5 and s["class_entropy"] == pytest.approx(math.log(2) / math.log(4))
    assert normalized_entropy(torch.tensor([5, 0, 0]), 3) == 0.0


@pytest.mark.parametrize("cls", [ReservoirBuffer, ClassBalancedBuffer])
def test_state_dict_round_trips_through_weights_only_load(cls):
    a = cls(16, seed=3)
    for t in range(4):
        a.add(torch.randn(10, 3), torch.randint(0, 4, (10,)), task=t, logits=torch.randn(10, 4))
    blob = io.BytesIO()
    torch.save(a.state_dict(), blob)
    blob.seek(0)
    b = cls(16, seed=99)
    b.load_state_dict(torch.load(blob, weights_only=True))
    x, y = torch.randn(10, 3), torch.randint(0, 4, (10,))
    a.add(x, y, task=4, logits=torch.zeros(10, 4))
    b.add(x, y, task=4, logits=torch.zeros(10, 4))
    assert torch.equal(a.x, b.x) and torch.equal(a.logits, b.logits) and a.seen == b.seen
    assert torch.equal(a.sample(5).index, b.sample(5).index), "the generator state is restored too"
