"""The diagonal Fisher of every member of a stacked MLP at once, without per-sample gradients.

For a linear layer ``z = W a + b`` the gradient of one row's loss is ``dL/dW = delta a^T`` (``delta``
= dL/dz of that row), so its square is ``delta^2 (a^2)^T``, and a weighted sum over rows is one
matrix product: ``sum_r w_r delta_r^2 (a_r^2)^T = (w * delta^2)^T (a^2)``. The per-row ``delta``
of every row come from one backward pass of the summed loss (rows do not interact: no batch
statistics). This is the Fisher of :func:`retain.strategies.penalties.fisher_diagonal`, for the
same rows, labels and weights, with the float sums in another order; its random draws (the
sampled kind's labels) use each member's own generator, with the same calls.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from retain.ensemble.stacked import StackedModel


def stacked_fisher(model: StackedModel, x: Tensor, y: Tensor, *, kind: str, generators: list[torch.Generator],
                   chunk_rows: int = 4096) -> dict[str, Tensor]:
    """Each member's diagonal Fisher on its samples ``x`` ``[N, n, ...]`` (labels ``y`` ``[N, n]``),
    stacked ``[N, *shape]`` per parameter name. ``model`` must be a Linear/ReLU chain (``layers``)."""
    n_members, n_samples = y.shape
    x = x.reshape(n_members, n_samples, -1)
    with torch.no_grad():
        probs = F.softmax(model(x), 2)
    n_classes = probs.shape[2]
    if kind == "exact":  # every class, weighted by the model's probability of it
        rows = x.repeat_interleave(n_classes, 1)
        labels = torch.arange(n_classes, device=x.device).repeat(n_samples).expand(n_members, -1)
        weights = probs.reshape(n_members, -1)
    else:
        rows = x
        labels = y if kind == "empirical" else torch.stack(  # drawn on the CPU, as fisher_diagonal draws them
            [torch.multinomial(p.cpu(), 1, generator=g).squeeze(1) for p, g in zip(probs, generators)]).to(x.device)
        weights = torch.ones(n_members, n_samples, device=x.device)
    fisher = {n: torch.zeros_like(p) for n, p in model.params.items()}
    for i in range(0, rows.shape[1], chunk_rows):
        _accumulate(model, rows[:, i: i + chunk_rows], labels[:, i: i + chunk_rows], weights[:, i: i + chunk_rows],
                    fisher)
    return {n: f / n_samples for n, f in fisher.items()}


def _accumulate(model: StackedModel, x: Tensor, labels: Tensor, weights: Tensor, fisher: dict[str, Tensor]) -> None:
    """Add ``sum_r w_r delta_r^2 (a_r^2)^T`` (and ``sum_r w_r delta_r^2`` for biases) of these rows."""
    params = {n: p.detach() for n, p in model.params.items()}
    inputs, outputs, h = [], [], x
    with torch.enable_grad():
        for kind, name in model.layers:
            if kind == "relu":
                h = torch.relu(h)
                continue
            inputs.append((name, h.detach()))
            h = torch.baddbmm(params[f"{name}.bias"].unsqueeze(1), h, params[f"{name}.weight"].transpose(1, 2))
            if not h.requires_grad:  # the first layer: its output is where the graph starts
                h.requires_grad_(True)
            outputs.append(h)
        n, r = labels.shape
        loss = F.cross_entropy(h.reshape(n * r, -1), labels.reshape(-1), reduction="sum")  # rows never interact
        deltas = torch.autograd.grad(loss, outputs)
    for (name, a), delta in zip(inputs, deltas):
        d2 = delta.pow(2) * weights.unsqueeze(2)
        fisher[f"{name}.weight"] += torch.bmm(d2.transpose(1, 2), a.pow(2))
        fisher[f"{name}.bias"] += d2.sum(1)
