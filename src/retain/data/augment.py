"""Batch-level image augmentation: random crop with padding and horizontal flip, the standard
CIFAR training augmentation (He et al. 2016; used by GEM, DER and Avalanche), done as one gather
over the whole batch instead of a Python loop over samples."""

from __future__ import annotations

import torch
from torch import Tensor


class RandomCropFlip:
    """Pad each image by ``padding`` pixels, take a random crop of the original size, and mirror it
    left-right with probability ``flip_p``; one random draw per sample, from a seeded generator.

    Works on N x C x H x W tensors of any dtype. ``fill`` is the per-channel value of the padding;
    after mean/std normalisation pass ``-mean / std`` so the border is black as in torchvision,
    which pads before normalising.
    """

    def __init__(self, padding: int = 4, flip_p: float = 0.5, *, seed: int = 0,
                 fill: Tensor | float | tuple[float, ...] = 0.0):
        if padding < 0 or not 0.0 <= flip_p <= 1.0:
            raise ValueError(f"padding must be >= 0 and flip_p in [0, 1], got {padding}, {flip_p}")
        self.padding, self.flip_p = padding, flip_p
        self.fill = torch.as_tensor(fill, dtype=torch.float32).reshape(-1)
        self.generator = torch.Generator().manual_seed(seed)

    def _padded(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        p = self.padding
        fill = self.fill.to(x.dtype) if x.dtype.is_floating_point else self.fill.round().to(x.dtype)
        out = fill.reshape(1, -1, 1, 1).expand(n, c, h + 2 * p, w + 2 * p).clone()
        out[:, :, p:p + h, p:p + w] = x
        return out

    def __call__(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"RandomCropFlip expects N x C x H x W, got shape {tuple(x.shape)}")
        n, _, h, w = x.shape
        g, p = self.generator, self.padding
        top = torch.randint(0, 2 * p + 1, (n,), generator=g)
        left = torch.randint(0, 2 * p + 1, (n,), generator=g)
        flip = torch.rand(n, generator=g) < self.flip_p
        rows = top[:, None] + torch.arange(h)  # n x h source rows in the padded image
        cols = torch.arange(w).expand(n, w)
        cols = torch.where(flip[:, None], cols.flip(1), cols) + left[:, None]  # mirror = read columns reversed
        padded = self._padded(x) if p else x
        batch = torch.arange(n)[:, None, None]
        # Advanced indices around a slice: the result is n x h x w x c, put channels back second.
        return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()
