"""Pretraining a backbone with retain itself, for users without a suitable pretrained checkpoint
(``retain pretrain``): a fresh transformers ViT trained jointly on every task of a benchmark (data
kept apart from the continual stream, e.g. MNIST digits 0-3 before a stream of 4-9), then saved
with ``save_pretrained`` into a directory that ``--backbone hf:DIR`` loads.

The directory holds ``config.json`` and the weights (transformers' own format),
``preprocessor_config.json`` (the image size and the mean and std the model was trained with,
which ``hf:`` uses to normalise) and ``retain_pretrain.json`` (what was trained on, how, and the
test accuracy reached).
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from retain.errors import ConfigError


@dataclass
class PretrainConfig:
    """What ``retain pretrain`` trains: the data, the ViT's size and the training settings."""

    out: str
    benchmark: str = "split-mnist"
    benchmark_options: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None
    patch: int | None = None  # None: 7 for 28 x 28, 16 for 32 x 32 (models.hf.default_patch)
    dim: int = 64
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 2.0
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0


def _check_out(cfg: PretrainConfig) -> None:
    out = Path(cfg.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"pretrain: --out {out} exists and is not an empty directory (pick a new one)")


def _check(cfg: PretrainConfig, image: tuple[int, int, int]) -> None:
    for name in ("patch", "dim", "depth", "heads", "epochs", "batch_size"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"pretrain: {name.replace('_', '-')} must be a positive integer, got {value!r}")
    if image[1] % cfg.patch or image[2] % cfg.patch:
        raise ConfigError(f"pretrain: patch {cfg.patch} must divide the image size {image[1]}x{image[2]}")
    if cfg.dim % cfg.heads:
        raise ConfigError(f"pretrain: dim {cfg.dim} must be divisible by heads {cfg.heads}")
    if not cfg.lr > 0 or not cfg.mlp_ratio > 0:
        raise ConfigError("pretrain: lr and mlp-ratio must be > 0")


def pretrain(cfg: PretrainConfig, log=print) -> dict[str, Any]:
    """Train, evaluate and save; returns what ``retain_pretrain.json`` records."""
    from retain.benchmarks import make_benchmark
    from retain.models.hf import _offline, build_hf_vit, default_patch, image_shape_of, new_vit

    _offline()  # no network, no progress bars
    _check_out(cfg)  # before any data is read
    from retain.training.evaluation import accuracy
    from retain.training.loop import iter_batches

    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    bench = make_benchmark(cfg.benchmark, tasks=None, seed=cfg.seed, scenario=None, data_dir=cfg.data_dir,
                           **cfg.benchmark_options)
    image = image_shape_of(bench.input_shape, "pretrain")
    if cfg.patch is None:
        cfg = dataclasses.replace(cfg, patch=default_patch(image[1]))
    _check(cfg, image)
    processor = {"image_processor_type": "ViTImageProcessor", "do_resize": True, "do_rescale": True,
                 "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.5] * image[0],
                 "image_std": [0.5] * image[0], "size": {"height": image[1], "width": image[2]}}
    vit = new_vit(image, patch=cfg.patch, dim=cfg.dim, depth=cfg.depth, heads=cfg.heads, mlp_ratio=cfg.mlp_ratio)
    model = build_hf_vit(vit, processor, bench.input_shape, bench.num_classes, "pretrain")
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    classes = sorted({c for e in bench.experiences for c in e.classes})
    start = time.perf_counter()
    for epoch in range(cfg.epochs):
        total, n = 0.0, 0
        for x, y, _ in iter_batches(bench.experiences, cfg.batch_size, gen):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, n = total + float(loss.detach()) * len(y), n + len(y)
        log(f"epoch {epoch + 1}/{cfg.epochs}: training loss {total / max(n, 1):.4f}")
    model.eval()
    correct = sum(accuracy(model, e, task_il=False, num_classes=bench.num_classes) * len(e.test_y)
                  for e in bench.experiences)
    test_acc = correct / max(sum(len(e.test_y) for e in bench.experiences), 1)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    model.vit.save_pretrained(out)
    (out / "preprocessor_config.json").write_text(json.dumps(processor, indent=2) + "\n")
    from retain import __version__

    record = {"retain": __version__, "config": asdict(cfg), "classes": classes, "test_accuracy": test_acc,
              "train_samples": sum(e.num_train for e in bench.experiences),
              "seconds": round(time.perf_counter() - start, 1)}
    (out / "retain_pretrain.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
