"""A plain-SGD step for the stacked MLP with the backward pass written out (no autograd graph).

For retain's MLP (:attr:`StackedModel.layers`: Linear, ReLU, ..., Linear) and a loss whose gradient
at the outputs is known in closed form (mean cross-entropy: ``(softmax(z) - onehot(y)) / rows``;
mean squared error: ``2 (z - t) / elements``), the backward pass is short: per layer, from the last,
the gradient at its input ``W^T @ G`` (before ``W`` moves) masked by the ReLU below, the weight
gradient ``G @ A^T`` and the bias gradient ``G`` summed over rows (activations transposed, a column
per row), each applied as ``torch.optim.SGD`` applies it (``p.add_(grad, alpha=-lr)``). The same
products autograd runs for :class:`~retain.ensemble.stacked._StackedLinear`, without building a
graph or gradient buffers: on 2 tasks of P-MNIST at N = 5 (2 threads, median of interleaved repeats,
commit 6667970) naive trained in 2.76 s against 3.38 s with autograd, DER++ in 9.58 s against 10.32
s. The output gradient is handed to ``log_softmax``'s own backward kernel in the form autograd hands
it, and the MSE's in autograd's order, so the step is autograd's plus SGD's to the bit (tested step
by step in ``tests/test_batched_seeds.py``).

Used only with plain SGD (no momentum, decay or hooks: :func:`plain_sgd_lr`); anything else takes
the autograd path.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.optim import optimizer as _optim_module

from retain.ensemble import products
from retain.ensemble.stacked import StackedModel


def plain_sgd_lr(optimizer: torch.optim.Optimizer) -> float | None:
    """The learning rate when ``optimizer`` is SGD with one parameter group and nothing but a
    float learning rate (no momentum, weight decay, nesterov, maximize, fused or differentiable
    variant, no step hooks); None otherwise."""
    if type(optimizer) is not torch.optim.SGD or len(optimizer.param_groups) != 1:
        return None
    group = optimizer.param_groups[0]
    if (group["momentum"] or group["weight_decay"] or group["nesterov"] or group["maximize"]
            or group.get("fused") or group.get("differentiable") or isinstance(group["lr"], Tensor)
            or optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks
            or _optim_module._global_optimizer_pre_hooks or _optim_module._global_optimizer_post_hooks):
        return None
    return float(group["lr"])


def chain(model: StackedModel) -> bool:
    """True when ``model`` is Linear, (ReLU, Linear)*: the shape :func:`backward_sgd` assumes."""
    kinds = [kind for kind, _ in model.layers or ()]
    return (bool(kinds) and kinds[-1] == "linear" and all(k == "linear" for k in kinds[0::2])
            and all(k == "relu" for k in kinds[1::2]))


@torch.no_grad()
def forward(model: StackedModel, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """The outputs ``[N, rows, outputs]`` and each Linear's input, transposed ``[N, in, rows]`` (kept
    for the backward pass), computed as :class:`~retain.ensemble.stacked.StackedModel` computes them."""
    h = x.reshape(x.shape[0], x.shape[1], -1).transpose(1, 2)
    inputs = []
    for kind, name in model.layers:
        if kind == "relu":
            h = torch.relu(h)
            continue
        inputs.append(h)
        h = products.baddbmm(model.params[f"{name}.bias"].unsqueeze(2), model.params[f"{name}.weight"], h)
    return h.transpose(1, 2).contiguous(), inputs


@torch.no_grad()
def cross_entropy(logits: Tensor, y: Tensor, scale: float, grad: Tensor) -> Tensor:
    """Each member's mean cross-entropy over its rows ``[N]``; adds ``scale`` times its gradient
    with respect to ``logits`` into ``grad`` (same shape)."""
    log_p = torch.log_softmax(logits, 2)
    target = y.unsqueeze(2)
    loss = -log_p.gather(2, target).squeeze(2).mean(1)
    # what autograd hands log_softmax's backward for ``scale * mean(nll)``: -scale / rows at each
    # row's label (the scale times the mean's 1 / rows, in float32 as autograd forms it), then that
    # same backward kernel: the gradient autograd computes, to the bit
    step = torch.full((), scale, dtype=logits.dtype, device=logits.device).div(y.shape[1]).neg()
    upstream = torch.zeros_like(log_p).scatter_(2, target, step.expand(target.shape))
    grad.add_(torch.ops.aten._log_softmax_backward_data(upstream, log_p, 2, logits.dtype))
    return loss


@torch.no_grad()
def mse(outputs: Tensor, targets: Tensor, scale: float, grad: Tensor) -> Tensor:
    """Each member's mean squared error over its rows and outputs ``[N]``; adds ``scale`` times its
    gradient into ``grad``."""
    diff = outputs - targets
    loss = diff.pow(2).flatten(1).mean(1)
    # autograd's order: scale / elements in float32 (the mean's backward), times 2 * diff (pow's)
    step = torch.full((), scale, dtype=diff.dtype, device=diff.device).div(diff[0].numel())
    grad.add_(torch.mul(step, diff * 2.0))
    return loss


@torch.no_grad()
def backward_sgd(model: StackedModel, inputs: list[Tensor], grad: Tensor, lr: float,
                 active: Tensor | None = None) -> None:
    """One SGD step of every member from ``grad``, the gradient of the summed loss at the outputs.
    ``active`` ``[N]`` (1.0 / 0.0): members with 0 get no gradient (retired: they never move)."""
    if active is not None:
        grad = grad * active.view(-1, 1, 1)
    g = grad.transpose(1, 2)  # [N, outputs, rows], the layout the autograd backward receives
    linears = [name for kind, name in model.layers if kind == "linear"]
    for k in range(len(linears) - 1, -1, -1):
        weight, bias, a = model.params[f"{linears[k]}.weight"], model.params[f"{linears[k]}.bias"], inputs[k]
        # before the weight moves; masked as autograd masks a ReLU (one fused kernel)
        below = torch.ops.aten.threshold_backward(products.bmm(weight.transpose(1, 2), g), a, 0) if k > 0 else None
        weight.add_(products.bmm(g, a.transpose(1, 2)), alpha=-lr)
        bias.add_(g.sum(2), alpha=-lr)
        g = below
