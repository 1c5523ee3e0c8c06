"""N copies of one backbone as one module: every parameter stacked along a leading member
dimension, the forward pass ``torch.func.vmap`` over ``functional_call``.

Member i's slice of each stacked tensor is member i's parameter; gradients and optimiser steps on
the stacked tensors are those of the N models taken one by one, as long as the loss is a *sum*
of the members' own losses (d(sum_j L_j)/d theta_i = dL_i/d theta_i) and the optimiser works
element by element (SGD, Adam). A mean over members would scale every gradient by 1/N.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from retain.ensemble import products


def batch_statistics(model: nn.Module) -> list[str]:
    """Names of ``model``'s buffers and batch-norm layers: state that vmap over members would
    share or mix (running statistics), so such a model cannot be stacked."""
    found = [f"buffer {n}" for n, _ in model.named_buffers()]
    norms = nn.modules.batchnorm._NormBase
    found += [f"{type(m).__name__} {n}" for n, m in model.named_modules() if isinstance(m, norms)]
    return found


class _StackedLinear(torch.autograd.Function):
    """Per member ``W_i @ h_i + b_i`` on activations kept transposed (``h`` ``[N, in, B]``: a
    column per row of the batch), ``W`` ``[N, out, in]``, ``b`` ``[N, out]``, with the gradients
    nn.Linear's backward computes (``W_i.T @ G_i``, ``G_i @ h_i.T``, ``G_i`` summed over the
    batch), each made directly in its tensor's layout. In this layout every product reads the
    weight as stored (at N = 5 the first layer's forward measured up to 1.4x faster than
    ``x @ W.T`` on rows, 2 threads)."""

    @staticmethod
    def forward(ctx, h: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        ctx.save_for_backward(h, weight)
        return products.baddbmm(bias.unsqueeze(2), weight, h)

    @staticmethod
    def backward(ctx, grad: Tensor):
        h, weight = ctx.saved_tensors
        need_h, need_w, need_b = ctx.needs_input_grad
        return (products.bmm(weight.transpose(1, 2), grad) if need_h else None,
                products.bmm(grad, h.transpose(1, 2)) if need_w else None, grad.sum(2) if need_b else None)


def _linear_chain(model: nn.Module) -> list[tuple[str, str]] | None:
    """("linear", name) and ("relu", name) steps when ``model`` is retain's MLP (a flatten, then
    Linear layers with biases and ReLUs, then a Linear head), else None."""
    from retain.models.mlp import MLP

    if type(model) is not MLP:
        return None
    steps: list[tuple[str, str]] = []
    modules = [(f"body.{n}", m) for n, m in model.body.named_children()] + [("head", model.head)]
    for name, module in modules:
        if isinstance(module, nn.Flatten) and name == "body.0":
            continue
        if type(module) is nn.Linear and module.bias is not None:
            steps.append(("linear", name))
        elif type(module) is nn.ReLU:
            steps.append(("relu", name))
        else:
            return None
    return steps


class StackedModel:
    """The stacked parameters of ``models`` (same architecture) and their vmapped forward.

    ``params`` maps each parameter name to a leaf tensor of shape ``[N, *shape]`` that the
    optimiser steps; ``skeleton`` is a copy of the first model on the meta device (no memory),
    used only for its structure."""

    def __init__(self, models: list[nn.Module]):
        if not models:
            raise ValueError("an ensemble needs at least one member")
        stateful = batch_statistics(models[0])
        if stateful:
            raise ValueError(f"cannot stack a model with batch statistics ({', '.join(stateful[:3])})")
        self.size = len(models)
        self.names = [n for n, p in models[0].named_parameters() if p.requires_grad]
        if len(self.names) != len(list(models[0].parameters())):
            raise ValueError("cannot stack a model with frozen parameters")
        per_member = [dict(m.named_parameters()) for m in models]
        self.params = {n: torch.stack([p[n].detach() for p in per_member]).requires_grad_(True) for n in self.names}
        self.skeleton = copy.deepcopy(models[0]).to("meta")
        for module in self.skeleton.modules():  # layers with a vmap-friendly form use it (models.vit.Attention)
            if hasattr(module, "batched_products"):
                module.batched_products = True
        self.layers = _linear_chain(self.skeleton)
        self._forward = vmap(self._one)

    def _one(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(self.skeleton, params, (x,))

    def __call__(self, x: Tensor, params: dict[str, Tensor] | None = None) -> Tensor:
        """Each member's outputs on its own inputs: ``x`` is ``[N, batch, ...]``, the result
        ``[N, batch, outputs]``. ``params``: other stacked parameters of the same shapes (a frozen
        teacher), instead of the trained ones."""
        params = self.params if params is None else params
        if self.layers is None:
            return self._forward(params, x)
        # A chain of Linear and ReLU (retain's MLP): the same function as the vmapped forward, written as
        # batched matrix products on transposed activations with a backward that makes each weight gradient
        # in the weight's own layout (vmap's, and bmm's own, copy a transposed gradient at every step:
        # measured 25-38% of a step at N = 5 on the CPU). The outputs come back as rows [N, batch, outputs].
        h = x.reshape(x.shape[0], x.shape[1], -1).transpose(1, 2)
        for kind, name in self.layers:
            h = torch.relu(h) if kind == "relu" else _StackedLinear.apply(h, params[f"{name}.weight"],
                                                                           params[f"{name}.bias"])
        return h.transpose(1, 2).contiguous()

    def parameters(self) -> list[Tensor]:
        return [self.params[n] for n in self.names]

    @property
    def device(self) -> torch.device:
        """Where the stacked parameters live (the members' device)."""
        return self.params[self.names[0]].device

    def detached(self) -> dict[str, Tensor]:
        """A copy of the stacked parameters, cut from the graph (an anchor or a teacher)."""
        return {n: p.detach().clone() for n, p in self.params.items()}

    def member_state(self, i: int) -> dict[str, Tensor]:
        """Member ``i``'s parameters as the state dict of one model."""
        return {n: p[i].detach().clone() for n, p in self.params.items()}

    @torch.no_grad()
    def copy_to(self, i: int, model: nn.Module) -> None:
        """Write member ``i``'s parameters into ``model`` (one of the members' own modules)."""
        for n, p in model.named_parameters():
            p.copy_(self.params[n][i])

    @torch.no_grad()
    def copy_from(self, i: int, model: nn.Module) -> None:
        """Set member ``i``'s parameters from ``model``."""
        for n, p in model.named_parameters():
            self.params[n][i].copy_(p)
