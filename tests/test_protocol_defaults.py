"""Each benchmark runs its published protocol's backbone unless told otherwise (the reduced
ResNet-18 on CIFAR, not an MLP on flattened pixels), and the DER paper's Split CIFAR-10
settings are a preset like its MNIST ones."""

from __future__ import annotations

from retain.config.presets import load_preset, preset_names
from retain.config.run import RunConfig


def test_cifar_benchmarks_default_to_the_reduced_resnet18():
    for bench in ("split-cifar10", "split-cifar100"):
        spec = RunConfig(benchmark=bench, strategy="naive").resolve()
        assert spec.backbone == "resnet18-reduced", bench
        assert spec.key == RunConfig(benchmark=bench, strategy="naive", backbone="resnet18-reduced").resolve().key
    assert RunConfig(benchmark="split-cifar10", strategy="naive", backbone="mlp").resolve().backbone == "mlp"
    assert RunConfig(benchmark="split-digits", strategy="naive").resolve().backbone == "mlp"  # MNIST-like: MLP


def test_the_der_split_cifar10_preset_gives_the_papers_settings():
    assert "der-scifar10" in preset_names()
    p = load_preset("der-scifar10")
    s = p.settings("derpp", 500)
    assert s.run["benchmark"] == "split-cifar10" and s.run["backbone"] == "resnet18" and s.run["tasks"] == 5
    assert s.run["epochs"] == 50 and s.run["batch_size"] == 32 and s.run["lr"] == 0.03
    assert s.params == {"buffer_size": 500, "replay_batch_size": 32, "alpha": 0.2, "beta": 0.5}
    assert p.settings("der", 200).params["alpha"] == 0.3 and p.settings("naive", None).run["lr"] == 0.1
    assert p.settings("er", 5120).run["lr"] == 0.1 and p.settings("agem", 500).run["lr"] == 0.03
    spec = RunConfig(strategy="derpp", **{k: v for k, v in s.run.items()}, params=s.params).resolve()
    assert spec.backbone == "resnet18" and spec.scenario == "class-il"
