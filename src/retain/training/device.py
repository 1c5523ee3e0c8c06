"""Where a run computes (``--device``) and in what precision (``--amp``): the names a user may give,
their checks (one line, before any run), and the moves that put a task's data and transforms on
the device.

Data stays on the CPU in its storage dtype (uint8 images). A run on an accelerator moves the
tensors of the tasks it trains on to the device once per task, with copies of their transforms
whose tensors (a permutation, a mean/std, a rotation) are on the device too, so a batch is
gathered and turned into floats there; test sets go over in uint8 batches at evaluation. Random
generators stay on the CPU (a CUDA draw would differ from the CPU one), so index tensors are made
on the CPU and indexing a device tensor with them is legal in torch.

Determinism on CUDA (``--deterministic``): ``torch.use_deterministic_algorithms(True)`` (which
also makes cuDNN pick deterministic convolution algorithms), ``torch.backends.cudnn.benchmark =
False`` and ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (cuBLAS needs a fixed workspace to be
reproducible, CUDA >= 10.2). The cost: deterministic kernels are slower (scatter-add and index-add
fall back to serial or sorted versions, cuDNN loses its fastest algorithms; typically 10-30% on
convolutional nets), and an operation with no deterministic CUDA kernel raises an error instead of
running. On the CPU torch's kernels are already deterministic for a fixed thread count.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import re
import types
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from retain.errors import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
CUBLAS_WORKSPACE = ":4096:8"
#: Callables whose tensors cannot be reached (closures) or must not be copied (modules, classes).
_NOT_MOVED = (types.FunctionType, types.MethodType, types.BuiltinFunctionType, torch.nn.Module, type)


def resolve_device(text: Any) -> str:
    """The concrete device a run uses for ``text`` (auto: ``cuda:0`` when CUDA is available, else
    ``cpu``); raises ConfigError for a name that is not a device or a device that is not here."""
    if not isinstance(text, str) or not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
        raise ConfigError(f"device must be one of {', '.join(DEVICE_CHOICES)}, got {text!r}")
    if text == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return "cpu"
    if text == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ConfigError("device must be present: mps was asked for but torch.backends.mps.is_available() "
                              "is False on this machine; use --device cpu or auto")
        return "mps"
    if not torch.cuda.is_available():
        raise ConfigError(f"device must be present: {text} was asked for but torch.cuda.is_available() is False "
                          f"on this machine (torch {torch.__version__}); use --device cpu or auto")
    index = int(text.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ConfigError(f"device must be present: {text} was asked for but this machine has {count} CUDA "
                          f"device(s) (cuda:0 to cuda:{count - 1})")
    return f"cuda:{index}"


def check_amp(amp: Any, device: str, strategy: Any) -> None:
    """Refuse an unknown precision, or one the strategy's math cannot take (see
    :meth:`retain.strategies.Strategy.amp_support`)."""
    if amp is None:
        return
    if amp not in AMP_DTYPES:
        raise ConfigError(f"amp must be one of {', '.join(AMP_DTYPES)} (or left out for float32), got {amp!r}")
    supported, why = strategy.amp_support()
    if amp not in supported:
        raise ConfigError(f"amp must be one that strategy {strategy.name} supports "
                          f"({', '.join(supported) or 'none'}), got {amp}: {why}")
    if device == "mps" and amp == "bf16" and not torch.backends.mps.is_macos_or_newer(14, 0):
        raise ConfigError("amp must be fp16 on mps before macOS 14, got bf16")


def key_fields(device: str, amp: str | None, deterministic: bool) -> dict[str, Any]:
    """What the run key holds of these settings: nothing for a float32 run on the CPU (so the keys
    of runs made before devices existed stay valid); the device's type (not its index: cuda:0 and
    cuda:1 give the same numbers), the precision, and determinism where they change the numbers."""
    out: dict[str, Any] = {}
    kind = torch.device(device).type
    if kind != "cpu":
        out["device"] = kind
        if deterministic:
            out["deterministic"] = True
    if amp is not None:
        out["amp"] = amp
    return out


def device_name(device: str) -> str:
    """A human name for the store: ``cuda:0 (NVIDIA H200)``, ``mps``, ``cpu``."""
    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


@contextlib.contextmanager
def deterministic_algorithms(on: bool, device: str) -> Iterator[None]:
    """Deterministic kernels for the duration of a run on a CUDA device (see the module docstring);
    restores the previous settings after. Nothing changes for a CPU run or when ``on`` is False."""
    if not on or not device.startswith("cuda"):
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)  # read when cuBLAS makes its handle
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark = before[1]


class DeviceMemory:
    """Peak memory allocated by torch on a CUDA device during a run (None elsewhere)."""

    def __init__(self, device: str):
        self.device = torch.device(device)

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_mb(self) -> float | None:
        if self.device.type != "cuda":
            return None
        return torch.cuda.max_memory_allocated(self.device) / 2**20


def move_transform(fn: Any, device: torch.device, memo: dict[int, Any]) -> Any:
    """``fn`` with its tensors on ``device``: a shallow copy of a transform object whose tensor
    attributes are moved and whose transform attributes are moved the same way. Random generators
    are shared with the original, not copied (a copy would replay the same draws every task).
    Functions and closures are returned as they are: a transform that captures a CPU tensor in a
    closure must move its input itself."""
    if fn is None or id(fn) in memo:
        return memo.get(id(fn), fn)
    if not hasattr(fn, "__dict__") or isinstance(fn, _NOT_MOVED):
        memo[id(fn)] = fn
        return fn
    out = copy.copy(fn)
    for name, value in vars(fn).items():
        if isinstance(value, Tensor):
            setattr(out, name, value.to(device))
        elif callable(value) and hasattr(value, "__dict__") and not isinstance(value, torch.Generator):
            setattr(out, name, move_transform(value, device, memo))
    memo[id(fn)] = out
    return out


def experience_on(exp: Any, device: torch.device, memo: dict[int, Any], *, train: bool = True) -> Any:
    """``exp`` (an Experience) with its transforms on ``device`` and, with ``train``, its training
    tensors there too (in storage dtype; tensors shared between experiences, as Permuted MNIST's
    images, are moved once per ``memo``). Test tensors stay on the CPU: evaluation moves them by batch."""
    if device.type == "cpu":
        return exp
    if not isinstance(exp.train_x, Tensor):  # rows read from disk per batch (retain.data.mapped)
        from retain.errors import ConfigError

        raise ConfigError(f"{exp.name or 'this benchmark'}: data streamed from disk trains on the CPU only for "
                          f"now; run it with --device cpu")

    def moved(t: Tensor) -> Tensor:
        if id(t) not in memo:
            memo[id(t)] = t.to(device, non_blocking=True)
        return memo[id(t)]

    changes: dict[str, Any] = {"transform": move_transform(exp.transform, device, memo),
                               "augment": move_transform(exp.augment, device, memo)}
    if train:
        changes.update(train_x=moved(exp.train_x), train_y=moved(exp.train_y))
    return dataclasses.replace(exp, **changes)


#: Checkpoint entries left where they were read: random generators' states (torch keeps them on
#: the CPU), and states whose own ``load_state_dict`` places them (model, optimiser, scaler).
_PLACED_BY_LOADER = ("generator", "gen", "model", "optimizer", "scaler")


def tensors_to(state: Any, device: torch.device, key: str = "") -> Any:
    """A strategy's checkpointed state (nested dicts, lists, tensors) with its tensors on ``device``:
    buffers, anchors, Fishers; except the entries named in ``_PLACED_BY_LOADER``."""
    if key in _PLACED_BY_LOADER:
        return state
    if isinstance(state, Tensor):
        return state.to(device)
    if isinstance(state, dict):
        return {k: tensors_to(v, device, k if isinstance(k, str) else "") for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(tensors_to(v, device, key) for v in state)
    return state
