"""L2P: Learning to Prompt for continual learning.

Wang et al., "Learning to Prompt for Continual Learning", CVPR 2022, https://arxiv.org/abs/2112.08654
(code: google-research/l2p; PyTorch port JH-LEE-KR/l2p-pytorch). The ViT stays frozen. A pool of
``pool_size`` prompts, each ``prompt_length`` tokens, has one learned key per prompt; the frozen
model's [CLS] feature of an image is the query, the ``top_k`` prompts whose keys are closest in
cosine are inserted after the [CLS] token (prompt tuning at the input), and the classifier reads
the mean of the prompt tokens' outputs. Loss: cross-entropy over the current task's classes minus
``key_weight`` times the summed cosine of the selected keys (averaged over the batch), which pulls
the keys towards the queries that chose them. At test time nothing is masked and no task id is used.

Deviations: the prompts carry no position embedding; no batch-wise prompt-frequency penalty and no
test-time majority vote of prompts (Mammoth questions it); the pool, length, top-N and key weight
are the PyTorch port's (10, 5, 5, 0.1), which other sources set differently (docs/results.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from retain.strategies.base import register_strategy
from retain.strategies.config import StrategyConfig, hp
from retain.strategies.prompting import PromptStrategy, SeenClasses, freeze_all_but_head, frozen_query, keep_only


@dataclass
class L2PConfig(StrategyConfig):
    pool_size: int = hp(10, "L2P: prompts in the pool", low=1)
    prompt_length: int = hp(5, "L2P: tokens per prompt", low=1)
    top_k: int = hp(5, "L2P: prompts selected per image (top-N by key-query cosine)", low=1)
    key_weight: float = hp(0.1, "L2P: weight of the surrogate loss pulling selected keys to their queries", low=0.0)
    grad_clip: float = hp(1.0, "L2P: gradient-norm clip (0: none)", low=0.0)


class L2PModel(nn.Module):
    """A frozen ViT with a prompt pool and learned keys; the head reads the prompt tokens' mean."""

    def __init__(self, backbone: nn.Module, cfg: L2PConfig, num_classes: int):
        super().__init__()
        self.seen = SeenClasses(num_classes)
        freeze_all_but_head(backbone)
        self.backbone, self.top_k = backbone, min(cfg.top_k, cfg.pool_size)
        dim = backbone.feature_dim
        self.keys = nn.Parameter(torch.empty(cfg.pool_size, dim).uniform_(-1, 1))
        self.prompts = nn.Parameter(torch.empty(cfg.pool_size, cfg.prompt_length, dim).uniform_(-1, 1))
        self.key_match: Tensor | None = None  # cosine of each selected key to its query, from the last forward

    def forward(self, x: Tensor) -> Tensor:
        query = F.normalize(frozen_query(self.backbone, x), dim=1)
        cosine = query @ F.normalize(self.keys, dim=1).T  # (B, pool)
        chosen = cosine.topk(self.top_k, dim=1).indices
        self.key_match = cosine.gather(1, chosen)
        prompts = self.prompts[chosen].flatten(1, 2)  # (B, top_k * length, D)
        tokens = self.backbone.embed(x)
        tokens = torch.cat([tokens[:, :1], prompts, tokens[:, 1:]], dim=1)
        out = self.backbone.final_norm(self.backbone.run_layers(tokens))
        return self.seen(self.backbone.head(out[:, 1: 1 + prompts.shape[1]].mean(1)))


@register_strategy("l2p")
class L2P(PromptStrategy):
    """Learning to Prompt: a pool of prompts chosen per image by key-query matching on a frozen ViT."""

    Config = L2PConfig
    cost = ("a frozen ViT: a second forward pass per image for the query; prompts of top_k x prompt_length "
            "tokens lengthen every sequence; trains pool_size x (prompt_length + 1) x width values and the head")

    def wrap(self, backbone: nn.Module, config: L2PConfig, num_classes: int) -> nn.Module:
        return L2PModel(backbone, config, num_classes)

    def train_mask(self, logits: Tensor) -> Tensor:
        return keep_only(logits, self.current) if self.current else logits

    def observe(self, x: Tensor, y: Tensor, task: int, *, plain: Tensor | None = None) -> dict[str, Tensor]:
        ce = self.cross_entropy(self.model(x), y)
        pull = self.model.key_match.sum(1).mean()
        self.step(ce - self.config.key_weight * pull)
        return {"loss": ce.detach(), "key_match": pull.detach()}
