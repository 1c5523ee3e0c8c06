"""The members' batched matrix products: one ``torch.bmm`` / ``torch.baddbmm`` for all members.

A member's product must be computed by the same kernel whatever the ensemble's size, or its
numbers would depend on how many runs it was trained with. Measured here (2 threads,
``[384, 784] @ [784, 100]``, the first layer of the MNIST MLP): a member's result from
``torch.bmm`` is bit-identical for N = 2 to 6, while ``torch.mm`` of the same member rounds
differently. These products once ran the largest multiple of the thread count as one ``bmm``
and each remaining member through ``torch.mm``, which balanced the threads (7.61 against 8.23
ms a DER++ step at N = 5 on an idle 2-core VM, commit e7d42cb) but gave seed 2 of ``--seeds 3``
other numbers than seed 2 of ``--seeds 5`` (issue 33). On a loaded machine the split was the
slower one (15.7 against 7.9 ms for that product at N = 5). Bit-identity won.
"""

from __future__ import annotations

import torch
from torch import Tensor


def bmm(a: Tensor, b: Tensor) -> Tensor:
    """``torch.bmm(a, b)`` (``[N, i, k] @ [N, k, j]``): each member's product by the same kernel."""
    return torch.bmm(a, b)


def baddbmm(c: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``torch.baddbmm(c, a, b)`` (``c`` broadcast to ``[N, i, j]``)."""
    return torch.baddbmm(c, a, b)
