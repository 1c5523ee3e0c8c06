"""CODA-Prompt: COntinual Decomposed Attention-based prompting.

Smith et al., "CODA-Prompt: COntinual Decomposed Attention-based Prompting for Rehearsal-Free
Continual Learning", CVPR 2023, https://arxiv.org/abs/2211.13218 (code: GT-RIPL/CODA-Prompt). The
ViT stays frozen. In each of the first ``prompt_layers`` layers, a prompt is a weighted sum of
prompt components P_m; the weight of component m for query q (the frozen model's [CLS] feature)
is the cosine between q * A_m and K_m, with a learned key K_m and attention vector A_m, and no
softmax. Each task adds ``components`` new components per layer, initialised orthogonal to the
earlier ones (Gram-Schmidt), and freezes the earlier ones. The prompt (``prompt_length`` tokens)
is split in half into key and value prefixes of the layer's attention (prefix tuning). The head
reads the final [CLS] token; training masks the logits of past tasks' classes. ``ortho_weight``
adds the orthogonality penalty mean((X X^T - I)^2) on K, A and P (0 in the authors' current scripts).

Deviations: the learning rate is constant (the paper uses a cosine schedule per task); when the
components outnumber the width (more than ``width`` of them), the extra ones are random unit
vectors, not orthogonal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from retain.benchmarks.base import Experience
from retain.strategies.base import register_strategy
from retain.strategies.config import StrategyConfig, hp
from retain.strategies.prompting import PromptStrategy, SeenClasses, freeze_all_but_head, frozen_query, keep_only


@dataclass
class CodaConfig(StrategyConfig):
    components: int = hp(10, "CODA-Prompt: prompt components added per task and layer (paper: 100 over 10 tasks)",
                         low=1)
    prompt_length: int = hp(8, "CODA-Prompt: prompt tokens, half key prefix and half value prefix", low=2)
    prompt_layers: int = hp(5, "CODA-Prompt: the first N layers get prompts (paper: 0-4)", low=1)
    ortho_weight: float = hp(0.0, "CODA-Prompt: weight of the orthogonality penalty on K, A, P", low=0.0)
    grad_clip: float = hp(0.0, "CODA-Prompt: gradient-norm clip (0: none)", low=0.0)


def orthonormal_rows(existing: Tensor | None, n: int, dim: int) -> Tensor:
    """``n`` unit rows of width ``dim``, orthogonal to each other and to the (orthonormal) rows of
    ``existing`` where the width allows; random unit rows where it does not."""
    new = torch.randn(n, dim)
    have = 0 if existing is None else len(existing)
    if have + n > dim:
        return F.normalize(new, dim=1)
    if existing is not None and have:
        new = new - (new @ existing.T) @ existing
    q, r = torch.linalg.qr(new.T)
    return (q * torch.sign(torch.diagonal(r))).T.contiguous()


def _earlier(blocks: nn.ParameterList, layer: int, width: int) -> Tensor | None:
    """Every earlier block's rows of ``layer``, flattened to ``width``; None before the first."""
    if not len(blocks):
        return None
    return torch.cat([b[layer] for b in blocks]).detach().reshape(-1, width).cpu()


class CodaModel(nn.Module):
    """A frozen ViT with per-layer prompt components (keys K, attention vectors A, prompts P),
    one block of ``components`` per task, stored as (layers, components, ...) parameters."""

    def __init__(self, backbone: nn.Module, cfg: CodaConfig, num_classes: int):
        super().__init__()
        self.seen = SeenClasses(num_classes)
        freeze_all_but_head(backbone)
        self.backbone, self.cfg = backbone, cfg
        self.layer_ids = list(range(min(cfg.prompt_layers, len(backbone.layers))))
        self.keys, self.attention, self.prompts = nn.ParameterList(), nn.ParameterList(), nn.ParameterList()

    def grow(self) -> None:
        """Add a trainable block of components (orthogonal to the earlier ones); freeze the earlier."""
        for p in self.parameters():
            if p is not self.backbone.head.weight and p is not self.backbone.head.bias:
                p.requires_grad_(False)
        c, length, dim = self.cfg.components, self.cfg.prompt_length, self.backbone.feature_dim
        device = self.backbone.head.weight.device
        made = {}
        for name, width in (("keys", dim), ("attention", dim), ("prompts", length * dim)):
            old = getattr(self, name)
            rows = [orthonormal_rows(_earlier(old, i, width), c, width) for i in range(len(self.layer_ids))]
            made[name] = torch.stack(rows)
        self.keys.append(nn.Parameter(made["keys"].to(device)))
        self.attention.append(nn.Parameter(made["attention"].to(device)))
        self.prompts.append(nn.Parameter(made["prompts"].reshape(len(self.layer_ids), c, length, dim).to(device)))

    def components(self) -> tuple[Tensor, Tensor, Tensor]:
        """K, A (layers, M, D) and P (layers, M, length, D) over every block so far."""
        return torch.cat(list(self.keys), 1), torch.cat(list(self.attention), 1), torch.cat(list(self.prompts), 1)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.backbone.embed(x)
        prefixes = None
        if len(self.keys):
            keys, attention, prompts = self.components()
            query = frozen_query(self.backbone, x)
            weighted = F.normalize(query[:, None, None, :] * attention[None], dim=-1)  # (B, layers, M, D)
            alpha = (weighted * F.normalize(keys, dim=-1)[None]).sum(-1)  # (B, layers, M), no softmax
            prompt = torch.einsum("blm,lmtd->bltd", alpha, prompts)
            half = prompt.shape[2] // 2
            prefixes = {layer: (prompt[:, i, :half], prompt[:, i, half:]) for i, layer in enumerate(self.layer_ids)}
        out = self.backbone.final_norm(self.backbone.run_layers(tokens, prefixes))
        return self.seen(self.backbone.head(out[:, 0]))

    def ortho_penalty(self) -> Tensor:
        total = torch.zeros((), device=self.backbone.head.weight.device)
        for block in self.components():
            flat = block.flatten(2)  # (layers, M, width)
            gram = flat @ flat.transpose(1, 2)
            total = total + ((gram - torch.eye(gram.shape[1], device=gram.device)) ** 2).mean()
        return total


@register_strategy("coda-prompt")
class CodaPrompt(PromptStrategy):
    """CODA-Prompt: per-image prompts assembled from a growing set of attention-weighted components on a frozen ViT."""

    Config = CodaConfig
    cost = ("a frozen ViT: a second forward pass per image for the query; components x (2 x width + prompt_length "
            "x width) values per prompted layer and task, the current task's trained; the head")

    def wrap(self, backbone: nn.Module, config: CodaConfig, num_classes: int) -> nn.Module:
        return CodaModel(backbone, config, num_classes)

    def begin_task(self, experience: Experience) -> None:
        self.model.grow()
        super().begin_task(experience)

    def train_mask(self, logits: Tensor) -> Tensor:
        return keep_only(logits, self.past, drop=True) if self.past else logits

    def observe(self, x: Tensor, y: Tensor, task: int, *, plain: Tensor | None = None) -> dict[str, Tensor]:
        ce = self.cross_entropy(self.model(x), y)
        ortho = self.model.ortho_penalty() if self.config.ortho_weight > 0 else torch.zeros((), device=ce.device)
        self.step(ce + self.config.ortho_weight * ortho)
        return {"loss": ce.detach(), "ortho": ortho.detach()}

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"blocks": len(self.model.keys)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        while len(self.model.keys) < state["blocks"]:  # the saved weights include every block: make them first
            self.model.grow()
        super().load_state_dict(state)
