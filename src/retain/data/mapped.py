"""Rows of a memory-mapped array, read per batch: data larger than memory without loading it.

:class:`MappedRows` stands where an :class:`~retain.benchmarks.base.Experience` keeps its
``train_x``/``test_x`` tensor and answers the only operations the loop, evaluation, replay and
probes apply to them: ``x[idx]`` for a tensor or array of row indices (a training batch),
``x[i:j]`` (an evaluation batch, the first samples of a probe), ``x[i]``, ``len(x)``,
``x.shape``, ``x.dtype`` and ``x.dim()``. Each of them copies just those rows from the mapping
into a fresh, writable tensor (so ``torch.from_numpy`` never sees the read-only mapping), and
:meth:`MappedRows.rows` makes a lazy subset (one task's samples) without reading anything.

Only the rows of a batch become anonymous memory; the mapped file's pages are the kernel's page
cache, which it can drop under pressure and read back from the file.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

_TORCH_DTYPES = {np.dtype(np.uint8): torch.uint8, np.dtype(np.float16): torch.float16,
                 np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


class MappedRows:
    """The rows ``index`` (all rows when None) of a memory-mapped ``N x ...`` array, read on demand."""

    def __init__(self, array: np.ndarray, index: np.ndarray | None = None):
        if array.dtype not in _TORCH_DTYPES:
            raise TypeError(f"MappedRows holds uint8 or float arrays, got {array.dtype}")
        self.array = array
        self.index = None if index is None else np.asarray(index, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index) if self.index is not None else len(self.array)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), *self.array.shape[1:]))

    @property
    def dtype(self) -> torch.dtype:
        return _TORCH_DTYPES[self.array.dtype]

    def dim(self) -> int:
        return self.array.ndim

    @property
    def device(self) -> torch.device:
        """Rows are read into CPU tensors (where a streamed run trains)."""
        return torch.device("cpu")

    def rows(self, idx: np.ndarray | Tensor) -> MappedRows:
        """The subset ``idx`` of these rows, still on disk (nothing is read)."""
        idx = np.asarray(idx, dtype=np.int64)
        return MappedRows(self.array, idx if self.index is None else self.index[idx])

    def __getitem__(self, key) -> Tensor:
        if isinstance(key, slice):
            if self.index is None:
                return torch.from_numpy(np.array(self.array[key]))  # one contiguous read
            return self._gather(self.index[key])
        if isinstance(key, (int, np.integer)):
            i = int(key) + (len(self) if key < 0 else 0)
            if not 0 <= i < len(self):
                raise IndexError(f"row {int(key)} is out of range for {len(self)} rows")
            return torch.from_numpy(np.array(self.array[i if self.index is None else int(self.index[i])]))
        key = key.numpy() if isinstance(key, Tensor) else np.asarray(key)
        if key.dtype == bool:
            key = np.flatnonzero(key)
        key = key.astype(np.int64, copy=False)
        return self._gather(key if self.index is None else self.index[key])

    def _gather(self, rows: np.ndarray) -> Tensor:
        """The file rows ``rows`` in the order given, copied straight into one new array."""
        n = len(self.array)
        if len(rows) and (rows.min() < -n or rows.max() >= n):
            raise IndexError(f"row index out of range for {n} rows")
        if len(rows) > 1 and rows[-1] - rows[0] == len(rows) - 1 and np.all(np.diff(rows) == 1):
            return torch.from_numpy(np.array(self.array[rows[0]: rows[-1] + 1]))  # a contiguous run: one read
        out = np.empty((len(rows), *self.array.shape[1:]), dtype=self.array.dtype)
        # mode="wrap" (negative rows count from the end, as in indexing; the range is checked above)
        # writes into ``out`` directly; the default mode would fill a temporary buffer first.
        np.take(self.array, rows, axis=0, out=out, mode="wrap")
        return torch.from_numpy(out)

    def __repr__(self) -> str:
        where = getattr(self.array, "filename", None) or "a mapping"
        return f"MappedRows({tuple(self.shape)}, {self.array.dtype}, {where})"


def open_mapped(path) -> MappedRows:
    """A ``.npy`` file as :class:`MappedRows` (read-only mapping; nothing is read yet)."""
    return MappedRows(np.load(path, mmap_mode="r", allow_pickle=False))


def is_mapped(x) -> bool:
    """Whether ``x`` is a numpy array backed by a memory-mapped file (``np.memmap``, ``np.load(mmap_mode=)``)."""
    return isinstance(x, np.memmap)
