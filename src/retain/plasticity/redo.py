"""ReDo: Recycling Dormant neurons (Sokar, Agarwal, Castro & Evci, "The Dormant Neuron
Phenomenon in Deep Reinforcement Learning", ICML 2023, arXiv 2302.12902).

A ReLU unit is tau-dormant when its normalised score E|h_i| / mean_k E|h_k| is <= tau on a batch.
Each dormant unit's incoming weights are drawn afresh from the layer's initialiser (bias 0), its
outgoing weights are set to 0 (so the reset does not change the network's output), and the
optimiser state of those weights is zeroed. Works on networks made of Linear -> ReLU -> ...
-> Linear (the MLP backbone); other layer types are left alone.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from retain.diagnostics.collapse import redo_scores


def linear_relu_triples(model: nn.Module) -> list[tuple[nn.Linear, nn.ReLU, nn.Linear]]:
    """(incoming Linear, ReLU, outgoing Linear) in module order, for sequential MLPs."""
    mods = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.ReLU))]
    out = []
    for i, m in enumerate(mods):
        if isinstance(m, nn.ReLU) and i > 0 and isinstance(mods[i - 1], nn.Linear):
            nxt = next((n for n in mods[i + 1:] if isinstance(n, nn.Linear)), None)
            if nxt is not None and nxt.in_features == mods[i - 1].out_features:
                out.append((mods[i - 1], m, nxt))
    return out


def _zero_state(optimizer: torch.optim.Optimizer | None, p: Tensor, rows=None, cols=None) -> None:
    state = optimizer.state.get(p, {}) if optimizer is not None else {}
    for v in state.values():
        if isinstance(v, Tensor) and v.shape == p.shape:
            if rows is not None:
                v[rows] = 0
            if cols is not None:
                v[:, cols] = 0


@torch.no_grad()
def redo_reset(model: nn.Module, x: Tensor, *, tau: float = 0.1,
               optimizer: torch.optim.Optimizer | None = None) -> int:
    """Reset the tau-dormant units of ``model`` measured on batch ``x``; returns how many."""
    triples = linear_relu_triples(model)
    acts: dict[int, Tensor] = {}
    hooks = [relu.register_forward_hook(lambda _m, _i, out, k=k: acts.__setitem__(k, out.detach()))
             for k, (_, relu, _) in enumerate(triples)]
    was = model.training
    model.eval()
    try:
        model(x)
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    total = 0
    for k, (inc, _, out) in enumerate(triples):
        dead = redo_scores(acts[k]) <= tau
        n = int(dead.sum())
        if n == 0:
            continue
        fresh = nn.Linear(inc.in_features, inc.out_features).weight.to(inc.weight)
        inc.weight[dead] = fresh[dead]
        _zero_state(optimizer, inc.weight, rows=dead)
        if inc.bias is not None:
            inc.bias[dead] = 0.0
            _zero_state(optimizer, inc.bias, rows=dead)
        out.weight[:, dead] = 0.0
        _zero_state(optimizer, out.weight, cols=dead)
        total += n
    return total
