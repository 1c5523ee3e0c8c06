"""A restricted unpickler for the pickled dataset files (CIFAR batches, CORe50 look-up tables).

``pickle.load`` runs whatever callable a file names, so a tampered download could execute code.
These files only ever hold containers, strings, numbers and numpy arrays, so ``find_class``
allows exactly the globals needed to rebuild those and refuses everything else with a DataError
that names the file and the global. The official files were written by Python 2; they are read
with ``encoding="latin1"``, which is what numpy needs to rebuild Python 2 arrays.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from retain.errors import DataError


def _multiarray():
    try:  # numpy >= 2 moved the module; files written by numpy 1 still name numpy.core
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - numpy 1
        from numpy.core import multiarray
    return multiarray


def _allowed() -> dict[tuple[str, str], Any]:
    ma = _multiarray()
    allowed: dict[tuple[str, str], Any] = {}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = ma._reconstruct
        allowed[(mod, "scalar")] = ma.scalar
    for mod in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "ndarray")] = np.ndarray
        allowed[(mod, "dtype")] = np.dtype
    # Python 3 writes bytes as codecs.encode(str, "latin1") under protocol 2; a pure conversion.
    allowed[("_codecs", "encode")] = _latin1_encode
    for mod in ("builtins", "__builtin__"):
        for name, obj in (("set", set), ("frozenset", frozenset), ("list", list), ("dict", dict),
                          ("tuple", tuple), ("bytearray", _no_size(bytearray)), ("int", int), ("float", float),
                          ("complex", complex), ("str", str), ("bytes", _no_size(bytes)), ("bool", bool)):
            allowed[(mod, name)] = obj
    return allowed


def _no_size(kind: type):
    """``kind`` (bytes, bytearray) rebuilt from the data a file holds, never from a count: a
    61-byte pickle calling ``bytearray(2**31)`` would otherwise fill 2 GB with zeros before any
    check could look at it. Pickle writers only ever pass the contents."""
    def build(*args: Any) -> Any:
        if args and isinstance(args[0], int):
            raise pickle.UnpicklingError(f"{kind.__name__}({args[0]}) asks for {args[0]} zero bytes, which no "
                                         "data file holds")
        return kind(*args)

    return build


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    if not isinstance(text, str):
        raise pickle.UnpicklingError("_codecs.encode called on a non-string")
    return text.encode(encoding, errors)


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that can only rebuild builtin containers and numpy arrays."""

    def __init__(self, file, source: str):
        super().__init__(file, encoding="latin1")
        self.source = source
        self._allowed = _allowed()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise DataError(f"{self.source}: refuses to load global {module}.{name}: the file is not a "
                            "plain data pickle (tampered or not the official file)") from None


def safe_loads(data: bytes, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` with :class:`SafeUnpickler`; any failure is a DataError naming ``source``."""
    try:
        return SafeUnpickler(io.BytesIO(data), source).load()
    except DataError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError,
            AttributeError, UnicodeDecodeError, MemoryError) as exc:
        raise DataError(f"{source}: cannot unpickle ({exc.__class__.__name__}: {exc}); the file is "
                        "truncated or corrupt") from None


def safe_load(path: Path | str) -> Any:
    """Read and unpickle the file at ``path`` with the restricted unpickler."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return safe_loads(data, str(path))
