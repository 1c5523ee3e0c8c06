"""Load backbone weights from a local checkpoint (Online-LoRA, Wei et al. 2025, starts from a
pretrained ViT; this is how a run gets one without a network).

``.safetensors`` files are read with safetensors; anything else with
``torch.load(weights_only=True)``, which rebuilds tensors and plain containers only and never runs
code from the file. A checkpoint may be a bare state dict or hold one under ``"state_dict"`` or
``"model"``. The classifier head is skipped when its shape differs (a new label space), so a
backbone trained on one benchmark can start another.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from retain.errors import ConfigError


def read_state_dict(path: Path | str) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to parse is the file's fault
        from retain.errors import weights_only_refusal  # torch's refusal, less its advice to load unsafely

        raise ConfigError(f"checkpoint {path}: refused or unreadable ({exc.__class__.__name__}: "
                          f"{weights_only_refusal(str(exc))})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"checkpoint {path}: expected a dict of tensors (a state dict)")
    return state


def load_weights(model: nn.Module, path: Path | str) -> nn.Module:
    """Copy the checkpoint's tensors into ``model``; every non-head tensor must match by name and shape."""
    state = read_state_dict(path)
    own = model.state_dict()
    head = {k for k in state if k.startswith("head.") and k in own and state[k].shape != own[k].shape}
    state = {k: v for k, v in state.items() if k not in head}
    missing = sorted(k for k in own if k not in state and not k.startswith("head."))
    unexpected = sorted(k for k in state if k not in own)
    wrong = sorted(k for k in state if k in own and state[k].shape != own[k].shape)
    if missing or unexpected or wrong:
        raise ConfigError(f"checkpoint {path} does not fit {type(model).__name__}: missing {missing[:5]}, "
                          f"unexpected {unexpected[:5]}, wrong shape {wrong[:5]} (first five of each)")
    model.load_state_dict(state, strict=False)
    return model
