"""--device: a CPU run is bit-identical to one made before devices existed (same numbers, same
keys); a device that is not here is one line and exit 2; on CUDA (skipped without it) the model,
the replay buffer and the record are on the device."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from retain.config.run import RunConfig
from retain.errors import ConfigError
from retain.training.loop import run_experiment

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is "
                                                                "False here)")


def test_cpu_keys_are_those_of_runs_made_before_devices():
    # Keys written into stores before --device existed (main at 44dcbf8).
    assert RunConfig(device="cpu").key() == "a3500bcd52a3bb16"
    assert RunConfig(strategy="derpp", device="cpu").key() == "c1a4a0fe85a567a0"
    # CPU kernels are deterministic already: the flag changes no number there, so not the key.
    assert RunConfig(strategy="ewc", device="cpu", deterministic=True).key() == RunConfig(strategy="ewc",
                                                                                         device="cpu").key()
    spec = RunConfig(strategy="er", device="cpu").resolve()
    assert "device" not in spec.resolved and "amp" not in spec.resolved and "deterministic" not in spec.resolved


def test_amp_and_accelerators_enter_the_key():
    from retain.training.device import key_fields

    assert RunConfig(amp="bf16", device="cpu").key() != RunConfig(device="cpu").key()
    assert RunConfig(amp="bf16", device="cpu").resolve().resolved["amp"] == "bf16"
    assert key_fields("cuda:1", None, False) == {"device": "cuda"} == key_fields("cuda:0", None, False)
    assert key_fields("cuda:0", "fp16", True) == {"device": "cuda", "deterministic": True, "amp": "fp16"}
    assert key_fields("cpu", None, True) == {}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_auto_is_cpu_without_cuda_and_the_default_run_is_unchanged():
    assert RunConfig().resolve().device == "cpu"
    assert RunConfig().key() == "a3500bcd52a3bb16"


def test_device_cpu_gives_the_same_matrix_as_the_default():
    base = run_experiment(RunConfig(strategy="derpp", tasks=2, epochs=1, seed=3))
    cpu = run_experiment(RunConfig(strategy="derpp", tasks=2, epochs=1, seed=3, device="cpu"))
    assert cpu.acc_matrix == base.acc_matrix and cpu.losses == base.losses  # bit-identical, not close
    assert cpu.device == "cpu" and cpu.peak_device_mem_mb is None


@pytest.mark.parametrize("device, message", [
    ("gpu", "device must be one of auto, cpu, cuda, cuda:N, mps, got 'gpu'"),
    ("cuda:x", "device must be one of"),
    ("", "device must be one of"),
])
def test_bad_device_names_are_refused(device, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig(device=device).resolve()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_absent_cuda_is_refused(device):
    with pytest.raises(ConfigError, match=rf"{device} was asked for but torch.cuda.is_available\(\) is False"):
        RunConfig(device=device).resolve()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cli_device_cuda_exits_2_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "retain", "run", "--device", "cuda", "--seeds", "1", "--quiet",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cuda was asked for" in lines[0], proc.stderr
    assert not (tmp_path / "retain.db").exists()  # refused before anything is written


def test_study_file_takes_device_and_amp(tmp_path):
    from retain.config.study_file import parse_study

    text = ('[settings]\ntasks = 2\ndevice = "cpu"\namp = "bf16"\n[benchmarks.permuted-digits]\n'
            '[strategies.naive]\n')
    study = parse_study(text, check_data=False)
    assert {(c.device, c.amp) for c in study.configs} == {("cpu", "bf16")}
    bad = text.replace('device = "cpu"', 'device = "tpu"')
    with pytest.raises(ConfigError, match="device"):
        parse_study(bad, check_data=False)


def test_transform_moves_keep_generators_shared():
    from retain.data.augment import RandomCropFlip
    from retain.training.device import move_transform

    aug = RandomCropFlip(seed=1, fill=(0.1, 0.2, 0.3))
    moved = move_transform(aug, torch.device("meta"), {})
    assert moved is not aug and moved.fill.device.type == "meta" and aug.fill.device.type == "cpu"
    assert moved.generator is aug.generator  # a copy would replay the same crops every task
    fn = lambda x: x  # noqa: E731
    assert move_transform(fn, torch.device("meta"), {}) is fn


@CUDA
def test_cuda_run_puts_model_buffer_and_record_on_the_device():
    from retain.execution.execute import execute
    from retain.training.loop import build

    cfg = RunConfig(strategy="derpp", tasks=2, epochs=1, device="cuda").resolve()
    assert cfg.device == "cuda:0" and cfg.resolved["device"] == "cuda"
    _, strategy = build(cfg)
    assert next(strategy.model.parameters()).device.type == "cuda"
    rec = execute(cfg)
    assert rec.status == "finished", rec.error
    assert rec.extra["device"].startswith("cuda:0 (") and rec.extra["peak_device_mem_mb"] > 0


@CUDA
def test_cuda_buffer_and_anchors_live_on_the_device():
    from retain.training.loop import build, train_task

    for name in ("er", "ewc", "er+si+lwf+ewc"):
        cfg = RunConfig(strategy=name, tasks=2, epochs=1, device="cuda").resolve()
        bench, strategy = build(cfg)
        exps = bench.experiences
        train_task(cfg, strategy, exps, 0, [exps[0]], torch.Generator().manual_seed(0), None, 1, lambda: None)
        if name.startswith("er"):
            assert strategy.buffer.x.device.type == "cuda" and strategy.buffer.y.device.type == "cuda"
        if "ewc" in name:
            ewc = strategy.regularisers["ewc"]
            assert all(t.device.type == "cuda" for d in ewc.fishers + ewc.anchors for t in d.values())
        if "si" in name:
            si = strategy.regularisers["si"]
            assert all(t.device.type == "cuda" for d in (si.omega, si.importance, si.anchor) for t in d.values())
            assert next(strategy.regularisers["lwf"].old_model.parameters()).device.type == "cuda"
            # a second task's step with every term present, on the device
            train_task(cfg, strategy, exps, 1, [exps[1]], torch.Generator().manual_seed(0), None, 1, lambda: None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_gpu_check_stops_with_a_message_without_a_gpu():
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "no CUDA device here" in proc.stderr and not proc.stdout
