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


def batch_statistics(model: nn.Module) -> list[str]:
    """Names of ``model``'s buffers and batch-norm layers: state that vmap over members would
    share or mix (running statistics), so such a model cannot be stacked."""
    found = [f"buffer {n}" for n, _ in model.named_buffers()]
    norms = nn.modules.batchnorm._NormBase
    found += [f"{type(m).__name__} {n}" for n, m in model.named_modules() if isinstance(m, norms)]
    return found


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
        self._forward = vmap(self._one)

    def _one(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(self.skeleton, params, (x,))

    def __call__(self, x: Tensor, params: dict[str, Tensor] | None = None) -> Tensor:
        """Each member's outputs on its own inputs: ``x`` is ``[N, batch, ...]``, the result
        ``[N, batch, outputs]``. ``params``: other stacked parameters of the same shapes (a frozen
        teacher), instead of the trained ones."""
        return self._forward(self.params if params is None else params, x)

    def parameters(self) -> list[Tensor]:
        return [self.params[n] for n in self.names]

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
