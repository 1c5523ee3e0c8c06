"""A small Vision Transformer for 32 x 32 images (Dosovitskiy et al. 2021, "An Image is Worth
16x16 Words"; sizes of DeiT-Tiny, Touvron et al. 2021: width 192, 12 blocks, 3 heads).

Each attention layer has separate ``query``, ``key`` and ``value`` ``nn.Linear`` modules rather
than one fused qkv matrix, so adapters can target them by name: Online-LoRA (Wei et al. 2025)
puts LoRA on query and value only (``target_modules=["query", "value"]``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from retain.errors import ConfigError
from retain.models.pretrained import load_weights
from retain.models.registry import register_backbone


class Attention(nn.Module):
    """Multi-head self-attention with separate query/key/value projections."""

    #: True: the attention as explicit products, ``softmax(q k^T / sqrt(d)) v``, the function
    #: ``scaled_dot_product_attention`` computes. An ensemble sets it on the copy it maps over
    #: members (retain.ensemble.stacked): torch's vmap has no batching rule for the fused CPU kernel
    #: and would run it member by member, while each explicit product is one batched call.
    batched_products = False

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        n, t, d = x.shape
        split = lambda z: z.reshape(n, t, self.heads, d // self.heads).transpose(1, 2)
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        if self.batched_products:
            out = torch.softmax(q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5, dim=-1) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(n, t, d))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """Patch embedding (a strided convolution), class token, learned positions, blocks, head."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int, *, patch: int, dim: int,
                 depth: int, heads: int, mlp_ratio: float):
        super().__init__()
        c, h, w = image_shape
        self.patch_embed = nn.Conv2d(c, dim, patch, stride=patch)
        tokens = (h // patch) * (w // patch) + 1
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.feature_dim = dim
        self.head = nn.Linear(dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1) + self.pos_embed
        return self.norm(self.blocks(tokens))[:, 0]

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _check(input_shape, patch, dim, depth, heads, mlp_ratio) -> None:
    if len(input_shape) != 3:
        raise ConfigError(f"vit-tiny: needs image inputs C x H x W, got input shape {tuple(input_shape)}")
    for name, v in (("patch", patch), ("dim", dim), ("depth", depth), ("heads", heads)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"vit-tiny: {name} must be a positive integer, got {v!r}")
    if input_shape[1] % patch or input_shape[2] % patch:
        raise ConfigError(f"vit-tiny: patch {patch} must divide the image size {tuple(input_shape[1:])}")
    if dim % heads:
        raise ConfigError(f"vit-tiny: dim {dim} must be divisible by heads {heads}")
    if not mlp_ratio > 0:
        raise ConfigError(f"vit-tiny: mlp_ratio must be > 0, got {mlp_ratio!r}")


@register_backbone("vit-tiny")
def vit_tiny(input_shape: tuple[int, ...], num_classes: int, patch: int = 4, dim: int = 192, depth: int = 12,
             heads: int = 3, mlp_ratio: float = 4.0, checkpoint: str | None = None) -> ViT:
    """ViT-Tiny for 32x32 (patch 4, width 192, 12 blocks, 3 heads); separate query/key/value."""
    _check(input_shape, patch, dim, depth, heads, mlp_ratio)
    model = ViT(tuple(int(s) for s in input_shape), num_classes, patch=patch, dim=dim, depth=depth,
                heads=heads, mlp_ratio=mlp_ratio)
    return load_weights(model, checkpoint) if checkpoint else model
