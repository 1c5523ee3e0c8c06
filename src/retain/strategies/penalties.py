"""Shared pieces of the regularisation strategies: the Fisher information from per-sample
gradients (``torch.func``: ``functional_call`` + ``vmap`` + ``grad``, no Python loop over samples)
and the quadratic penalty sum_i w_i (theta_i - theta*_i)^2. A model that sets ``per_sample_loop``
(the text encoders: each row at its own length, which vmap cannot trace) takes one backward pass per
(sample, label) row instead, adding each squared gradient into the sum (no per-row copies kept).

The three Fisher estimates follow van de Ven (arXiv 2502.11756):

* ``exact``: the expectation over the model's own predictive distribution,
  F = E_x sum_c p(c|x) (d log p(c|x) / d theta)^2 (one gradient per sample and class);
* ``empirical``: the squared gradient at the true label;
* ``sampled``: the squared gradient at one label drawn from p(.|x).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from retain import distributed

FISHER_KINDS = ("exact", "empirical", "sampled")


def trainable(model: nn.Module) -> dict[str, Tensor]:
    """Name -> parameter for every parameter that trains."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def detached_copy(params: dict[str, Tensor]) -> dict[str, Tensor]:
    return {n: p.detach().clone() for n, p in params.items()}


def _per_pair_sq_grads(model: nn.Module, x: Tensor, labels: Tensor) -> dict[str, Tensor]:
    """Squared gradient of -log p(label|x) for every (x, label) row, all rows at once."""
    params = {n: p.detach() for n, p in trainable(model).items()}
    buffers = dict(model.named_buffers())

    def nll(p: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        logits = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return F.cross_entropy(logits, yi.unsqueeze(0))

    grads = vmap(grad(nll), in_dims=(None, 0, 0))(params, x, labels)
    return {n: g.pow(2) for n, g in grads.items()}


def fisher_diagonal(model: nn.Module, x: Tensor, y: Tensor, *, kind: str = "exact",
                    chunk: int = 64, generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Diagonal Fisher of ``model``'s trainable parameters, averaged over the samples in ``x``.

    Rows are processed ``chunk`` (sample, label) pairs at a time so that memory stays bounded
    (vmap materialises one gradient per row).
    """
    if kind not in FISHER_KINDS:
        raise ValueError(f"fisher kind must be one of {FISHER_KINDS}, got {kind!r}")
    # Eval mode: the Fisher is taken at the trained model as evaluated (BatchNorm on its running
    # statistics, no dropout); it is also what vmap needs, since BatchNorm in train mode updates
    # its running statistics in place, which vmap refuses.
    was_training = model.training
    model.eval()
    try:
        return _fisher(model, x, y, kind, chunk, generator)
    finally:
        model.train(was_training)


def _fisher(model: nn.Module, x: Tensor, y: Tensor, kind: str, chunk: int,
            generator: torch.Generator | None) -> dict[str, Tensor]:
    fisher = {n: torch.zeros_like(p) for n, p in trainable(model).items()}
    with torch.no_grad():
        probs = torch.cat([F.softmax(model(x[i: i + chunk]), 1) for i in range(0, len(x), chunk)])
    n_samples, n_classes = probs.shape
    if kind == "exact":  # every class, weighted by the model's probability of it
        xs = x.repeat_interleave(n_classes, 0)
        labels = torch.arange(n_classes, device=x.device).repeat(n_samples)
        weights = probs.reshape(-1)
    else:
        xs = x
        # the sampled labels are drawn on the CPU (a CPU generator; the same labels on every device)
        labels = y if kind == "empirical" else torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(
            x.device)
        weights = torch.ones(n_samples, device=x.device)
    # Data-parallel: every rank drew the same rows (and labels); each takes the per-row gradients of
    # its own contiguous piece, and the sums are added over the ranks.
    start, stop = distributed.bounds(len(xs))
    if getattr(model, "per_sample_loop", False):  # a model vmap cannot trace (a text encoder's dynamic padding)
        params = trainable(model)
        for i in range(start, stop):
            loss = F.cross_entropy(model(xs[i: i + 1]), labels[i: i + 1])
            for f, g in zip(fisher.values(), torch.autograd.grad(loss, list(params.values())), strict=True):
                f.add_(g.pow(2), alpha=float(weights[i]))
        return {n: f / n_samples for n, f in distributed.sum_(fisher).items()}
    for i in range(start, stop, chunk):
        end = min(i + chunk, stop)
        sq = _per_pair_sq_grads(model, xs[i: end], labels[i: end])
        w = weights[i: end]
        for n, g in sq.items():
            fisher[n] += torch.tensordot(w, g, dims=1)
    return {n: f / n_samples for n, f in distributed.sum_(fisher).items()}


def quadratic_penalty(params: dict[str, Tensor], weights: dict[str, Tensor],
                      anchor: dict[str, Tensor]) -> Tensor:
    """sum_i w_i (theta_i - theta*_i)^2 over the named parameters (differentiable)."""
    terms = [(weights[n] * (p - anchor[n]).pow(2)).sum() for n, p in params.items()]
    return torch.stack(terms).sum() if terms else torch.zeros(())


def sample_inputs(experience, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``n`` random training samples of ``experience`` (all of them if it has fewer), as the
    model sees them at evaluation (no augmentation)."""
    idx = torch.randperm(experience.num_train, generator=generator)[:n]
    return experience.prepare(experience.train_x[idx]), experience.train_y[idx]
