"""LoRA adapters through Hugging Face PEFT, injected in place (no wrapper model, parameter names kept).

Shared by the backbones' ``mode = "lora"`` (:mod:`retain.models.text`, :mod:`retain.models.hf`) and
Online-LoRA (:mod:`retain.strategies.online_lora`).
"""

from __future__ import annotations

from torch import nn

from retain.errors import ConfigError

#: attention query/value projections: retain's ViT and transformers' BERT (query, value); transformers
#: >= 5's ViT and Llama (q_proj, v_proj)
QUERY_VALUE = ("query", "value", "q_proj", "v_proj")


def lora_targets(model: nn.Module, spec: str = "auto") -> list[str]:
    """Module names to adapt: ``spec`` (comma-separated) as given, or the attention's query and value
    projections when the model has them, else every nn.Linear except the classifier ``head``."""
    if spec != "auto":
        return [s.strip() for s in spec.split(",") if s.strip()]
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    qv = [n for n in names if n.rsplit(".", 1)[-1] in QUERY_VALUE]
    return qv or [n for n in names if n != "head" and not n.startswith("head.")]


def inject_lora(model: nn.Module, *, r: int, alpha: float, dropout: float = 0.0, targets: str = "auto",
                where: str = "lora") -> None:
    """A fresh LoRA adapter (A Kaiming-uniform, B zero: PEFT's default) on ``targets`` of ``model``, in
    place. Freezing the rest is the caller's. ConfigError when a named target is not a module of the
    model (PEFT's own error lists every module)."""
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        raise ConfigError(f"{where}: LoRA needs PEFT (pip install 'retain[lora]')") from None
    names = lora_targets(model, targets)
    linear = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)} | {
        n for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    missing = [t for t in names if t not in linear]
    if not names or missing:
        known = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise ConfigError(f"{where}: LoRA target(s) {', '.join(missing) or repr(targets)} are not linear modules "
                          f"of {type(model).__name__}; its linear modules are named {', '.join(known[:12])}")
    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=names, lora_dropout=dropout, bias="none",
                        init_lora_weights=True)
    inject_adapter_in_model(config, model)
    if hasattr(model, "peft_config"):  # injection records its config here; a later adapter is a new one
        del model.peft_config
