"""The GPU check, in one go (about 5 minutes on one data-centre GPU), printing one table:

1. P-MNIST DER++, 20 tasks, the DER protocol (``--preset der-pmnist``: 1 epoch, batch 128, SGD lr
   0.2, buffer 500, alpha 1.0, beta 0.5) trained on the GPU through retain (``run_experiment``:
   training, evaluation after every task, probes) against a plain PyTorch loop doing the same math
   on the same GPU (the loop of benchmarks/minimal.py with every tensor on the device). Goal: ratio
   <= 1.15. Needs the MNIST files (``--data-dir``); skipped with a line when they are not there.
2. One epoch of Split-CIFAR-100-sized data (50,000 random 32 x 32 uint8 images, 100 classes) with
   the reduced ResNet-18, batch 32 and 128, in float32 and with ``--amp bf16``: retain's batch
   path (``iter_batches`` + ``Strategy.observe``, data on the GPU) against a plain loop with the
   same normalisation, crop+flip and autocast.

Each row gives seconds and the peak memory torch allocated on the device. Without a CUDA device
it stops at once with a message (exit 1).

    python benchmarks/gpu_check.py --data-dir ../shared/data/mnist [--cifar-batches N]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

N_TRAIN = 50_000


def _synced() -> float:
    torch.cuda.synchronize()
    return time.perf_counter()


def _reset() -> None:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()


def _peak_mb() -> float:
    return torch.cuda.max_memory_allocated() / 2**20


def retain_derpp(data_dir: str, tasks: int) -> tuple[float, float]:
    from retain.config.presets import load_preset, preset_values
    from retain.config.run import RunConfig
    from retain.training.loop import run_experiment

    run_kwargs, params, _ = preset_values(load_preset("der-pmnist"), "derpp", {}, {})
    cfg = RunConfig(strategy="derpp", seed=0, data_dir=data_dir, device="cuda", params=params,
                    **{**run_kwargs, "tasks": tasks}).resolve()
    _reset()
    t0 = _synced()
    result = run_experiment(cfg)
    return _synced() - t0, sum(result.acc_matrix[-1]) / len(result.acc_matrix[-1])


def plain_derpp(data_dir: str, tasks: int) -> tuple[float, float]:
    """benchmarks/minimal.py's DER++ loop with every tensor on the GPU (data moved once)."""
    from plain_derpp import read_idx

    dev = torch.device("cuda")
    d = Path(data_dir)
    files = [next(d.glob(f"{n}*")) for n in ("train-images", "train-labels", "t10k-images", "t10k-labels")]
    train_x, train_y, test_x, test_y = (read_idx(f) for f in files)
    _reset()
    t0 = _synced()
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    train_x, test_x = train_x.reshape(len(train_x), -1).to(dev), test_x.reshape(len(test_x), -1).to(dev)
    train_y, test_y = train_y.long().to(dev), test_y.long().to(dev)
    perms = [torch.arange(784)] + [torch.randperm(784, generator=g) for _ in range(tasks - 1)]
    perms = [p.to(dev) for p in perms]
    model = torch.nn.Sequential(torch.nn.Linear(784, 100), torch.nn.ReLU(), torch.nn.Linear(100, 100),
                                torch.nn.ReLU(), torch.nn.Linear(100, 10)).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    bx_all, by_all, bz_all = (torch.zeros(500, 784, device=dev), torch.zeros(500, dtype=torch.int64, device=dev),
                              torch.zeros(500, 10, device=dev))
    seen = 0
    for t in range(tasks):
        order = torch.randperm(len(train_y), generator=g).to(dev)
        for i in range(0, len(order), 128):
            idx = order[i:i + 128]
            x, y = torch.index_select(train_x[idx].float().mul_(1 / 255), 1, perms[t]), train_y[idx]
            out = model(x)
            loss = F.cross_entropy(out, y)
            if seen:
                s = torch.randperm(min(seen, 500), generator=g)[:128].to(dev)
                loss = loss + F.mse_loss(model(bx_all[s]), bz_all[s])
                s = torch.randperm(min(seen, 500), generator=g)[:128].to(dev)
                loss = loss + 0.5 * F.cross_entropy(model(bx_all[s]), by_all[s])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n = torch.arange(seen, seen + len(y))
            j = (torch.rand(len(y), generator=g, dtype=torch.float64) * (n + 1)).long()
            slot = torch.where(n < 500, n, j)
            keep = slot < 500
            sl, kp = slot[keep].to(dev), keep.nonzero().squeeze(1).to(dev)
            bx_all[sl], by_all[sl], bz_all[sl] = x[kp], y[kp], out.detach()[kp]
            seen += len(y)
        with torch.inference_mode():
            row = [(model(torch.index_select(test_x.float().mul_(1 / 255), 1, p)).argmax(1) == test_y).float().mean()
                   for p in perms]
    return _synced() - t0, float(torch.stack(row).mean())


def retain_epoch(data_dir: str, batch_size: int, amp: str | None, batches: int) -> float:
    from retain.config.run import RunConfig
    from retain.training.device import experience_on
    from retain.training.loop import build, iter_batches

    cfg = RunConfig(benchmark="split-cifar100", strategy="naive", backbone="resnet18-reduced", batch_size=batch_size,
                    data_dir=data_dir, benchmark_options={"verify": False}, device="cuda", amp=amp,
                    tasks=1)  # one task of all 100 classes: the 50,000 images of an epoch
    bench, strategy = build(cfg)
    exp = experience_on(bench.experiences[0], strategy.device, {})
    strategy.set_augmentation(exp.augment)
    gen = torch.Generator().manual_seed(0)
    stream = (b for _ in range(math.ceil(batches * batch_size / exp.num_train) + 1)
              for b in iter_batches([exp], batch_size, gen))
    for _ in range(5):
        x, y, _ = next(stream)
        strategy.observe(x, y, 0)
    _reset()
    t0 = _synced()
    for _ in range(batches):
        x, y, _ = next(stream)
        strategy.observe(x, y, 0)
    return _synced() - t0


def plain_epoch(x: torch.Tensor, y: torch.Tensor, batch_size: int, amp: str | None, batches: int) -> float:
    from retain.benchmarks.cifar import CIFAR100_MEAN, CIFAR100_STD
    from retain.data.augment import RandomCropFlip
    from retain.models.resnet import resnet18_reduced

    dev = torch.device("cuda")
    torch.manual_seed(0)
    model = resnet18_reduced((3, 32, 32), 100).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mean = torch.tensor(CIFAR100_MEAN, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR100_STD, device=dev).view(1, 3, 1, 1)
    augment = RandomCropFlip(4, 0.5, seed=0, fill=(-mean.flatten() / std.flatten()).cpu())
    augment.fill = augment.fill.to(dev)
    order = torch.randperm(len(y)).to(dev)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)

    def step(i: int) -> None:
        idx = order[(i * batch_size) % len(y):][:batch_size]
        xb = augment((x[idx].float().div_(255) - mean) / std)
        with torch.autocast("cuda", dtype=dtype) if dtype else contextlib.nullcontext():
            loss = F.cross_entropy(model(xb), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(5):
        step(i)
    _reset()
    t0 = _synced()
    for i in range(5, 5 + batches):
        step(i)
    return _synced() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=os.environ.get("RETAIN_DATA", "../shared/data/mnist"))
    ap.add_argument("--tasks", type=int, default=20)
    ap.add_argument("--cifar-batches", type=int, default=0, help="batches timed per CIFAR row (default: one "
                                                                 "whole epoch, 50,000 images)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print(f"gpu_check: no CUDA device here (torch {torch.__version__}, torch.cuda.is_available() is False); "
              "run it on a machine with a GPU", file=sys.stderr)
        return 1
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # plain_derpp.py, next to this file
    name = torch.cuda.get_device_name(0)
    rows: list[tuple[str, str, float, float, str]] = []
    print(f"GPU: {name}; torch {torch.__version__}", flush=True)
    mnist = Path(args.data_dir)
    if mnist.is_dir() and any(mnist.glob("train-images*")):
        for which, fn in (("retain", retain_derpp), ("plain", plain_derpp), ("retain", retain_derpp)):
            seconds, acc = fn(str(mnist), args.tasks)
            rows.append((f"P-MNIST DER++ {args.tasks} tasks", which, seconds, _peak_mb(), f"acc {100 * acc:.1f}"))
            print(rows[-1], flush=True)
        r, p = min(s for _, w, s, _, _ in rows if w == "retain"), next(s for _, w, s, _, _ in rows if w == "plain")
        rows.append((f"P-MNIST DER++ {args.tasks} tasks", "ratio", r / p, float("nan"), "goal <= 1.15"))
    else:
        print(f"P-MNIST part skipped: no MNIST files in {mnist} (--data-dir)", flush=True)
    from epoch_time_cifar import write_random_cifar100

    with tempfile.TemporaryDirectory() as tmp:
        write_random_cifar100(Path(tmp))
        gen = torch.Generator().manual_seed(1)
        x = torch.randint(0, 256, (N_TRAIN, 3, 32, 32), dtype=torch.uint8, generator=gen).cuda()
        y = torch.randint(0, 100, (N_TRAIN,), generator=gen).cuda()
        for batch in (32, 128):
            batches = args.cifar_batches or math.ceil(N_TRAIN / batch)
            for amp in (None, "bf16"):
                label = f"CIFAR-100-sized epoch, batch {batch}, {amp or 'float32'}"
                times = {}
                for which in ("retain", "plain"):
                    seconds = (retain_epoch(tmp, batch, amp, batches) if which == "retain"
                               else plain_epoch(x, y, batch, amp, batches))
                    times[which] = seconds * math.ceil(N_TRAIN / batch) / batches
                    rows.append((label, which, times[which], _peak_mb(), f"{batches} batches timed"))
                    print(rows[-1], flush=True)
                rows.append((label, "ratio", times["retain"] / times["plain"], float("nan"), ""))
    print(f"\n| workload ({name}) | side | seconds | peak device MiB | note |\n|---|---|---|---|---|")
    for label, side, seconds, mb, note in rows:
        print(f"| {label} | {side} | {seconds:.3f} | {'' if math.isnan(mb) else f'{mb:.0f}'} | {note} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
