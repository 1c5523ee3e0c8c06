"""Batched matrix products of the members, balanced over the CPU's threads.

On the CPU, ``torch.bmm`` hands whole members to threads: at N = 5 on two threads one thread
multiplies three members while the other waits after two, and the first layer's forward product
(N x [100, 784] @ [784, 384]) ran at 143 GFLOP/s against 178 at N = 4 (ad-hoc microbenchmark,
2 threads, this 2-core VM). :func:`bmm` and :func:`baddbmm` therefore run the largest multiple of
the thread count as one batched product and each remaining member as one ``torch.mm`` (which
splits a single product over all threads). Interleaved A/B of 150 DER++ steps at N = 5, 6 repeats
(ad-hoc, commit e7d42cb): 7.61 ms a step against 8.23 ms; naive's smaller products showed no
difference (2.74 vs 2.79 ms). Off the CPU, or when N divides evenly, they are ``torch.bmm`` and
``torch.baddbmm``. Each member's result is its own product either way; only the kernel that
computes a member's product (and so the rounding) may differ.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _split(n: int, device: torch.device) -> int:
    """How many leading members go into one batched product (the rest go one by one)."""
    if device.type != "cpu":
        return n
    threads = torch.get_num_threads()
    whole = n - n % threads
    return n if whole in (0, n) else whole


def bmm(a: Tensor, b: Tensor) -> Tensor:
    """``torch.bmm(a, b)`` (``[N, i, k] @ [N, k, j]``), balanced over the threads."""
    n = a.shape[0]
    k = _split(n, a.device)
    if k == n:
        return torch.bmm(a, b)
    out = a.new_empty((n, a.shape[1], b.shape[2]))
    torch.bmm(a[:k], b[:k], out=out[:k])
    for i in range(k, n):
        torch.mm(a[i], b[i], out=out[i])
    return out


def baddbmm(c: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``torch.baddbmm(c, a, b)`` (``c`` broadcast to ``[N, i, j]``), balanced over the threads."""
    n = a.shape[0]
    k = _split(n, a.device)
    if k == n:
        return torch.baddbmm(c, a, b)
    out = a.new_empty((n, a.shape[1], b.shape[2]))
    torch.baddbmm(c[:k], a[:k], b[:k], out=out[:k])
    for i in range(k, n):
        torch.addmm(c[i], a[i], b[i], out=out[i])
    return out
