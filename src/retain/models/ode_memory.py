"""Building blocks of the experimental ``ode-memory`` strategy: a continuous-depth feature block
(dh/dt = f_theta(h, t), integrated with torchdiffeq) and a cross-attention read of a memory of
past feature vectors. Both are residual by construction: f = 0 is the identity, an empty memory
leaves the features unchanged."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


class ODEFunc(nn.Module):
    """f_theta(t, h): a small MLP of the state and time. The last layer starts at zero, so the
    block starts as the identity and learns to move away from it."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim + 1, hidden), nn.Tanh(), nn.Linear(hidden, dim))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, t: Tensor, h: Tensor) -> Tensor:
        return self.net(torch.cat([h, t.expand(h.shape[0], 1)], dim=1))


class ODEBlock(nn.Module):
    """h(T) from h(0) = features, by fixed-step RK4 (``steps`` steps over [0, T])."""

    def __init__(self, dim: int, hidden: int = 64, *, steps: int = 4, horizon: float = 1.0, adjoint: bool = False):
        super().__init__()
        self.func = ODEFunc(dim, hidden)
        self.steps, self.adjoint = steps, adjoint
        self.register_buffer("times", torch.tensor([0.0, horizon]))

    def forward(self, h: Tensor) -> Tensor:
        import torchdiffeq  # optional extra `ode`, imported only when the block runs

        solve = torchdiffeq.odeint_adjoint if self.adjoint else torchdiffeq.odeint
        step = float(self.times[1] - self.times[0]) / self.steps
        return solve(self.func, h, self.times, method="rk4", options={"step_size": step})[-1]


class MemoryRead(nn.Module):
    """Single-head cross-attention from the current features (queries) to memory slots (keys and
    values: the slot's features plus an embedding of its label), added back to the features."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.label = nn.Embedding(num_classes, dim)
        self.norm = nn.LayerNorm(dim)
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.scale = dim ** -0.5
        self.slots: Tensor | None = None  # (M, dim) features of memory items, set before each read
        self.slot_labels: Tensor | None = None

    def set_memory(self, features: Tensor | None, labels: Tensor | None) -> None:
        self.slots, self.slot_labels = features, labels

    def forward(self, h: Tensor) -> Tensor:
        if self.slots is None or len(self.slots) == 0:
            return h
        kv = self.slots + self.label(self.slot_labels)  # (M, dim), shared by the whole batch
        weights = torch.softmax(self.query(self.norm(h)) @ self.key(kv).T * self.scale, dim=1)  # (B, M)
        return h + self.out(weights @ self.value(kv))


class ODEMemoryNet(nn.Module):
    """backbone features -> [ODE block] -> [memory read] -> the backbone's head."""

    def __init__(self, backbone: nn.Module, num_classes: int, *, use_ode: bool, use_memory: bool,
                 ode_hidden: int, ode_steps: int, adjoint: bool):
        super().__init__()
        self.backbone = backbone
        dim = backbone.head.in_features
        self.ode = ODEBlock(dim, ode_hidden, steps=ode_steps, adjoint=adjoint) if use_ode else nn.Identity()
        self.memory = MemoryRead(dim, num_classes) if use_memory else None
        self.head = backbone.head
        #: Called with ``self.training`` before each read; returns (inputs, labels) of the memory
        #: items to read, or None for an empty memory. Set by the strategy that owns the buffer.
        self.memory_source: Callable[[bool], tuple[Tensor, Tensor] | None] | None = None

    def features(self, x: Tensor) -> Tensor:
        h = self.ode(self.backbone.features(x))
        if self.memory is None:
            return h
        items = self.memory_source(self.training) if self.memory_source is not None else None
        if items is None:
            self.memory.set_memory(None, None)
        else:
            with torch.no_grad():  # memory features are recomputed by the current network, never stale
                self.memory.set_memory(self.ode(self.backbone.features(items[0])), items[1])
        return self.memory(h)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
