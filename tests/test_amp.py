"""--amp: every strategy whose math allows it trains under bf16 autocast (which works on the CPU)
and ends close to its float32 run; fp16 goes through a gradient scaler; strategies whose statistics
read raw gradients (SI, A-GEM) take bf16 only, and those that do not say they support AMP are
refused with the reason.

Tolerance: 0.02 of final average accuracy (18 of the 900 test samples of two permuted-digits
tasks). Both runs start from the same weights and see the same batches; bf16 rounds the matmul
inputs to an 8-bit mantissa (about 0.4% relative), which moves the 860-step trajectory a little.
Measured at the benchmark's 10 epochs: at most 0.0067 apart for every supported strategy
(cumulative; 0.0034 for the others), while changing the seed alone moves float32 accuracy by 0.02
to 0.28 on the same setting (3 epochs), so 0.02 is tight enough to catch an AMP path that breaks
training and loose enough for rounding."""

from __future__ import annotations

import pytest
import torch

from retain.config.run import RunConfig
from retain.errors import ConfigError
from retain.strategies import STRATEGIES
from retain.training.loop import build, run_experiment

TOLERANCE = 0.02
BF16 = [n for n, cls in STRATEGIES.items() if "bf16" in cls.amp_support()[0]]


def _acc(strategy: str, amp: str | None) -> float:
    return run_experiment(RunConfig(strategy=strategy, tasks=2, seed=0, device="cpu", amp=amp)).metrics["avg_acc"]


def test_the_regularisers_and_replay_methods_support_bf16():
    assert {"naive", "er", "der", "derpp", "agem", "ewc", "si", "lwf", "joint", "cumulative"} <= set(BF16)


@pytest.mark.parametrize("strategy", BF16)
def test_bf16_is_close_to_float32(strategy):
    assert abs(_acc(strategy, "bf16") - _acc(strategy, None)) <= TOLERANCE


@pytest.mark.parametrize("strategy", ["naive", "derpp", "ewc"])
def test_fp16_with_the_scaler_is_close_to_float32(strategy):
    assert abs(_acc(strategy, "fp16") - _acc(strategy, None)) <= TOLERANCE


def test_fp16_steps_through_a_gradient_scaler():
    _, strategy = build(RunConfig(strategy="naive", tasks=2, device="cpu", amp="fp16"))
    assert strategy.scaler is not None
    x, y = torch.randn(8, 64), torch.randint(0, 10, (8,))
    before = strategy.scaler.get_scale()
    strategy.observe(x, y, 0)
    assert strategy.scaler.get_scale() == before and strategy.scaler._growth_tracker.item() == 1  # one good step
    assert "scaler" in strategy.state_dict()


def test_bf16_forward_runs_in_bf16_and_regulariser_state_stays_float32():
    from retain.benchmarks import make_benchmark

    cfg = RunConfig(strategy="ewc", tasks=2, device="cpu", amp="bf16").resolve()
    _, strategy = build(cfg)
    seen = []
    hook = strategy.model.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    strategy.observe(torch.randn(8, 64), torch.randint(0, 10, (8,)), 0)
    hook.remove()
    assert seen == [torch.bfloat16]
    exp = make_benchmark("permuted-digits", tasks=2, seed=0).experiences[0]
    strategy.begin_task(exp)
    strategy.end_task(exp)
    assert all(t.dtype == torch.float32 for f in strategy.regularisers["ewc"].fishers for t in f.values())


def test_der_stores_float32_logits_under_bf16():
    _, strategy = build(RunConfig(strategy="derpp", tasks=2, device="cpu", amp="bf16"))
    strategy.observe(torch.randn(8, 64), torch.randint(0, 10, (8,)), 0)
    assert strategy.buffer.logits.dtype == torch.float32


@pytest.mark.parametrize("strategy, amp, reason", [
    ("si", "fp16", "SI's path integral reads raw gradients"),
    ("agem", "fp16", "A-GEM projects raw float32 gradients"),
    ("online-lora", "bf16", "defines its own observe and declares no amp_modes"),
    ("ode-memory", "bf16", "not validated in reduced precision"),
])
def test_unsupported_precisions_are_refused_with_the_reason(strategy, amp, reason):
    with pytest.raises(ConfigError, match=reason):
        RunConfig(strategy=strategy, amp=amp, device="cpu").resolve()


def test_bad_amp_is_refused():
    with pytest.raises(ConfigError, match="amp must be one of bf16, fp16"):
        RunConfig(amp="fp8", device="cpu").resolve()


@pytest.mark.parametrize("strategy, modes", [
    ("er+si", ("bf16",)), ("er+ewc", ("bf16", "fp16")), ("agem+lwf", ("bf16",)), ("derpp+ewc+lwf", ("bf16", "fp16")),
    ("naive+si", ("bf16",)),
])
def test_a_composite_supports_the_precisions_all_its_parts_support(strategy, modes):
    assert STRATEGIES.get(strategy).amp_support()[0] == modes


def test_a_composite_is_refused_a_precision_one_part_cannot_take_with_that_parts_reason():
    with pytest.raises(ConfigError, match=r"strategy er\+si supports \(bf16\), got fp16: si: SI's path integral"):
        RunConfig(strategy="er+si", amp="fp16", device="cpu").resolve()
    RunConfig(strategy="er+si", amp="bf16", device="cpu").resolve()


def test_a_composite_under_bf16_keeps_its_regularisers_terms_and_state_in_float32():
    from retain.benchmarks import make_benchmark

    _, strategy = build(RunConfig(strategy="er+si+lwf+ewc", tasks=2, device="cpu", amp="bf16"))
    exp = make_benchmark("permuted-digits", tasks=2, seed=0).experiences[0]
    strategy.begin_task(exp)
    strategy.observe(torch.randn(8, 64), torch.randint(0, 10, (8,)), 0)
    strategy.end_task(exp)
    strategy.begin_task(exp)
    seen = []
    hook = strategy.model.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    logged = strategy.observe(torch.randn(8, 64), torch.randint(0, 10, (8,)), 1)
    hook.remove()
    assert seen and set(seen) == {torch.bfloat16}  # the base's forward (ER: current + replayed)
    assert {logged[n].dtype for n in ("si", "lwf", "ewc")} == {torch.float32}
    regs = strategy.regularisers
    state = [*regs["si"].omega.values(), *regs["si"].importance.values(), *regs["ewc"].fishers[0].values()]
    assert state and all(t.dtype == torch.float32 for t in state)
    assert all(t.dtype == torch.float32 for t in (p.grad for p in strategy.model.parameters()) if t is not None)
