"""The DER paper's P-MNIST DER++ protocol as a user of plain PyTorch would write it, end to end:
read the four MNIST IDX files, train 20 permuted tasks (1 epoch, batch 128, SGD lr 0.2, buffer
500, replay batch 128, alpha 1.0, beta 0.5), evaluate every task after each one, print the
final average accuracy. PyTorch's default threads; no retain import (the baseline of
benchmarks/end_to_end.py).

    python benchmarks/plain_derpp.py --data-dir ../shared/data/mnist [--tasks 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np
import torch
from minimal import minimal_derpp


def read_idx(path: Path) -> torch.Tensor:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return torch.from_numpy(np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape).copy())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--tasks", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    d = Path(args.data_dir)
    files = [next(d.glob(f"{name}*")) for name in ("train-images", "train-labels", "t10k-images", "t10k-labels")]
    train_x, train_y, test_x, test_y = (read_idx(f) for f in files)
    matrix = minimal_derpp(train_x, train_y.long(), test_x, test_y.long(), tasks=args.tasks, batch_size=128,
                           lr=0.2, hidden=(100, 100), buffer_size=500, replay_batch_size=128, alpha=1.0, beta=0.5,
                           seed=args.seed)
    print(f"final average accuracy {100 * sum(matrix[-1]) / len(matrix[-1]):.1f}")


if __name__ == "__main__":
    main()
