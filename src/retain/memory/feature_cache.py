"""A cache of a frozen backbone's features, so each distinct input passes the backbone once however
many epochs revisit it. Keyed by the bytes of the input (BLAKE2b, 128 bits): an image seen again,
in any batch or epoch, is recognised exactly, with no index from the data loader."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


class FeatureCache:
    """Features and labels of every distinct input seen, in the order first seen.

    ``encode`` maps a batch of inputs to features (the frozen backbone); :meth:`__call__` runs it
    on the inputs not seen before only. ``encoded`` counts the inputs that went through it."""

    def __init__(self, encode: Callable[[Tensor], Tensor]):
        self.encode = encode
        self.index: dict[bytes, int] = {}
        self.features: Tensor | None = None  # (capacity, D), the first len(self) rows in use
        self.labels: Tensor | None = None
        self.encoded = 0

    def __len__(self) -> int:
        return len(self.index)

    @staticmethod
    def keys(x: Tensor) -> list[bytes]:
        rows = x.detach().to("cpu").contiguous().reshape(len(x), -1).numpy()
        return [hashlib.blake2b(r.tobytes(), digest_size=16).digest() for r in rows]

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(features of ``x``, the cache positions of its rows); rows first seen now are encoded and
        stored with their labels. Positions >= the cache's length before the call are new."""
        keys = self.keys(x)
        fresh: dict[bytes, int] = {}
        for i, k in enumerate(keys):
            if k not in self.index and k not in fresh:
                fresh[k] = i
        if fresh:
            rows = torch.tensor(list(fresh.values()), device=x.device)
            self._store(self.encode(x[rows]), y[rows])
            start = len(self.index)
            self.index.update({k: start + j for j, k in enumerate(fresh)})
            self.encoded += len(fresh)
        where = torch.tensor([self.index[k] for k in keys], device=self.features.device)
        return self.features[where], where

    def _store(self, f: Tensor, y: Tensor) -> None:
        n, need = len(self.index), len(self.index) + len(f)
        if self.features is None or need > len(self.features):
            capacity = max(need, 2 * (0 if self.features is None else len(self.features)), 256)
            grown = torch.empty(capacity, f.shape[1], dtype=f.dtype, device=f.device)
            labels = torch.empty(capacity, dtype=y.dtype, device=y.device)
            if self.features is not None:
                grown[:n], labels[:n] = self.features[:n], self.labels[:n]
            self.features, self.labels = grown, labels
        self.features[n:need], self.labels[n:need] = f, y

    def rows(self, where: Tensor) -> tuple[Tensor, Tensor]:
        return self.features[where], self.labels[where]

    def state_dict(self) -> dict[str, Any]:
        n = len(self)
        keys = torch.tensor([list(k) for k in self.index], dtype=torch.uint8).reshape(n, 16)
        return {"keys": keys, "features": None if self.features is None else self.features[:n].clone(),
                "labels": None if self.labels is None else self.labels[:n].clone(), "encoded": self.encoded}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.index = {bytes(row.tolist()): i for i, row in enumerate(state["keys"])}
        self.features, self.labels, self.encoded = state["features"], state["labels"], int(state["encoded"])
