"""Time per training epoch of naive fine-tuning with the reduced ResNet-18 on Split-CIFAR-100-sized
input (50,000 random 32 x 32 uint8 images, 100 classes), retain vs a minimal PyTorch loop.

retain's side writes the images as official-layout CIFAR-100 files in a temporary folder, builds
``split-cifar100`` with the ``resnet18-reduced`` backbone through ``retain.training.loop.build``, and times
the calls ``run_experiment`` makes per batch: ``iter_batches`` (gather, normalise, crop+flip on the
whole batch) and ``Strategy.observe`` (forward, backward, SGD step). The minimal loop does the
same math on plain tensors with the same network. A full epoch (1,563 batches of 32) takes
minutes on a shared CPU, so each side times ``--batches`` batches after a warm-up and the figure
is extrapolated to the epoch: ``seconds per batch x ceil(50,000 / batch size)``. Sides alternate
so machine noise hits both alike; medians are printed.

    python benchmarks/epoch_time_cifar.py --batches 40 --repeats 3
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from retain.benchmarks.cifar import CIFAR100_MEAN, CIFAR100_STD
from retain.config.run import RunConfig
from retain.data.augment import RandomCropFlip
from retain.models.resnet import resnet18_reduced
from retain.training.loop import build, iter_batches

N_TRAIN = 50_000


def write_random_cifar100(root: Path, seed: int = 0) -> None:
    """50,000 random training and 10,000 test images as cifar-100-python/train, test (protocol 4)."""
    import pickle

    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, n in (("train", N_TRAIN), ("test", 10_000)):
        fine = rng.integers(0, 100, n)
        d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"fine_labels": fine.tolist(),
             b"coarse_labels": (fine // 5).tolist()}
        (folder / name).write_bytes(pickle.dumps(d, protocol=4))


def time_retain(data_dir: str, batches: int, batch_size: int, seed: int) -> tuple[float, float]:
    """(wall, CPU) seconds per batch through retain's batch path."""
    cfg = RunConfig(benchmark="split-cifar100", strategy="naive", backbone="resnet18-reduced", seed=seed,
                    batch_size=batch_size, data_dir=data_dir, benchmark_options={"verify": False})
    bench, strategy = build(cfg)
    gen = torch.Generator().manual_seed(seed)
    exp = bench.experiences[0]
    stream = iter_batches([exp], batch_size, gen)
    for _ in range(3):  # warm-up
        x, y, _ = next(stream)
        strategy.observe(x, y, exp.task_id)
    t0, c0 = time.perf_counter(), time.process_time()
    loss_sum = torch.zeros(())
    for _ in range(batches):
        x, y, _ = next(stream)
        loss_sum += strategy.observe(x, y, exp.task_id)["loss"]
    float(loss_sum)
    return (time.perf_counter() - t0) / batches, (time.process_time() - c0) / batches


def time_minimal(x: torch.Tensor, y: torch.Tensor, batches: int, batch_size: int, seed: int) -> tuple[float, float]:
    """(wall, CPU) seconds per batch of the plain loop."""
    torch.manual_seed(seed)
    model = resnet18_reduced((3, 32, 32), 100)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mean, std = torch.tensor(CIFAR100_MEAN).view(1, 3, 1, 1), torch.tensor(CIFAR100_STD).view(1, 3, 1, 1)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=g)
    augment = RandomCropFlip(4, 0.5, seed=seed, fill=-mean.flatten() / std.flatten())  # same math as retain

    def step(i):
        idx = order[i * batch_size:(i + 1) * batch_size]
        xb = augment((x[idx].float().div_(255) - mean) / std)
        loss = F.cross_entropy(model(xb), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(3):
        step(i)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(3, 3 + batches):
        step(i)
    return (time.perf_counter() - t0) / batches, (time.process_time() - c0) / batches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=40, help="batches timed per repeat (then extrapolated)")
    ap.add_argument("--batch-size", type=int, default=32, help="32: the DER paper's CIFAR batch size")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    per_epoch = math.ceil(N_TRAIN / args.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        write_random_cifar100(Path(tmp))
        rng = np.random.default_rng(1)
        x = torch.from_numpy(rng.integers(0, 256, (N_TRAIN, 3, 32, 32), dtype=np.uint8))
        y = torch.from_numpy(rng.integers(0, 100, N_TRAIN))
        times: dict[str, list[tuple[float, float]]] = {"retain": [], "minimal": []}
        for r in range(args.repeats):
            times["retain"].append(time_retain(tmp, args.batches, args.batch_size, r))
            times["minimal"].append(time_minimal(x, y, args.batches, args.batch_size, r))
            print(f"repeat {r}: " + ", ".join(f"{k} {v[-1][0] * 1e3:.1f} ms/batch wall ({v[-1][1] * 1e3:.1f} CPU)"
                                              for k, v in times.items()))
    print(f"reduced ResNet-18 (nf=20), batch {args.batch_size}, {args.threads} thread(s), {args.batches} batches "
          f"x {args.repeats} repeats, extrapolated to {per_epoch} batches = one epoch of 50,000 images")
    med = {k: [statistics.median(t[i] for t in v) for i in (0, 1)] for k, v in times.items()}
    for k, (wall, cpu) in med.items():
        print(f"{k:>8}: wall {wall * 1e3:.1f} ms/batch -> {wall * per_epoch:.0f} s/epoch; "
              f"CPU {cpu * 1e3:.1f} ms/batch -> {cpu * per_epoch:.0f} s/epoch")
    print(f"ratio retain/minimal: wall {med['retain'][0] / med['minimal'][0]:.3f}, "
          f"CPU {med['retain'][1] / med['minimal'][1]:.3f}")


if __name__ == "__main__":
    main()
