"""Pretrained text encoders (BERT family) as backbones: ``hf:DIR`` where DIR holds an encoder that
transformers' ``AutoModel`` loads and its tokenizer.

A batch is token rows as the text benchmarks store them (``int32``, right-padded with -1, see
:mod:`retain.data.text`). The encoder sees only as many columns as the batch's longest row needs
(dynamic padding: a batch of 20-token texts costs 20 tokens, whatever the benchmark's
``max_length``), with the attention mask of the real tokens. ``features(x)`` is the pooled
sentence representation: the mean of the last layer over real tokens (sentence-transformers'
pooling, which the directory's ``1_Pooling/config.json`` names when it is one of theirs) or the
[CLS] token (``pooling=cls``); ``head`` is a new linear classifier over every class of the stream,
as for images, that grows with them: the row of a class trains only from the task that brings it (see
``grow_head``), so a class still to come keeps the logit of a new row; the softmax of training and
evaluation is over every output, as for images (task-IL evaluation masks other tasks' classes).

The head is new and the encoder is not: at a rate that suits the pretrained weights (Adam 1e-4-3e-4) a
new head moves too slowly to catch up with the old classes' logits within a short task (measured on
MiniLM-L6-v2: after 16 steps on AG News, DBpedia's 14 classes reached 12.5 % with one rate for all at
3e-4, 78-88 % with the head at 30-100x), so the head trains at ``head_lr_scale`` (default 100) times the
run's rate, in a parameter group of its own.

Modes: ``full`` (every weight trains), ``frozen`` (the encoder is fixed; the head trains on its
features), ``lora`` (LoRA adapters through PEFT on the attention's query and value projections, or
``lora_targets``; the encoder's own weights fixed, adapters and head train).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from retain.errors import ConfigError

MODES = ("full", "frozen", "lora")
POOLINGS = ("auto", "mean", "cls")
#: test rows a text model scores at once (evaluation): the image default (2048) would hold
#: attention maps of 2048 x heads x length^2 floats
EVAL_BATCH = 256


def _functorch_wrapped(x: Tensor) -> bool:
    """Whether ``x`` is a tensor inside vmap or grad (per-sample Fisher): no data-dependent shapes there."""
    try:
        return bool(torch._C._functorch.is_functorch_wrapped_tensor(x))
    except AttributeError:  # pragma: no cover - older torch
        return False


def sentence_pooling(where: Path) -> str:
    """"mean" or "cls" as the directory's sentence-transformers pooling config says; "cls" otherwise."""
    cfg = where / "1_Pooling" / "config.json"
    try:
        pooling = json.loads(cfg.read_text()) if cfg.is_file() else {}
    except (OSError, ValueError):
        pooling = {}
    return "mean" if pooling.get("pooling_mode_mean_tokens") else "cls"


class TextEncoder(nn.Module):
    """A transformers encoder with retain's interface: ``features(x)`` (pooled), ``head``, ``forward``."""

    modality = "text"
    #: per-sample gradients (EWC's Fisher) one row at a time: vmap cannot trace dynamic padding
    per_sample_loop = True

    def __init__(self, encoder: nn.Module, num_classes: int, *, pooling: str, pad_id: int, head_lr_scale: float = 1.0):
        super().__init__()
        self.encoder, self.pooling, self.pad_id = encoder, pooling, int(pad_id)
        self.feature_dim = int(encoder.config.hidden_size)
        self.head = nn.Linear(self.feature_dim, num_classes)
        self.eval_batch_size = EVAL_BATCH
        if head_lr_scale != 1.0:  # the optimiser gives these lr * scale (retain.training.loop.param_groups)
            for p in self.head.parameters():
                p.lr_scale = float(head_lr_scale)
        # The head grows with the classes: a class's row trains from the task its class first appears in
        # (the loop calls grow_head); until then its gradient is zero, so it stays as initialised, as a row added
        # then would be. Under Adam, whose steps have the same size however small the gradient, the rows of
        # classes still to come would otherwise be pushed down by a full step every step of every earlier task
        # (measured: AG News learnt to 28 % as the 4th task, 88 % as the 2nd).
        self.register_buffer("grown", torch.zeros(num_classes, dtype=torch.bool))
        self.head.weight.register_hook(lambda g: g * self.grown.unsqueeze(1).to(g.dtype))
        self.head.bias.register_hook(lambda g: g * self.grown.to(g.dtype))

    def grow_head(self, classes) -> None:
        """Let the rows of ``classes`` train (the run loop calls it before each task's training)."""
        self.grown[list(classes)] = True

    def inputs(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(token ids, attention mask) of stored rows, cut to the batch's longest row."""
        mask = x >= 0
        if not _functorch_wrapped(x) and x.shape[1] > 1:
            width = max(int(mask.sum(1).max()), 1)  # one read of the device: the price of dynamic padding
            x, mask = x[:, :width], mask[:, :width]
        return x.masked_fill(~mask, self.pad_id).long(), mask.long()

    def features(self, x: Tensor) -> Tensor:
        ids, mask = self.inputs(x)
        hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def set_mode(model: nn.Module, body: nn.Module, mode: str, *, lora_r: int, lora_alpha: float, lora_dropout: float,
             lora_targets: str, where: str) -> None:
    """Which weights of ``body`` (the pretrained part of ``model``) train: all, none, or LoRA adapters."""
    if mode not in MODES:
        raise ConfigError(f"backbone {where}: mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "full":
        return
    if mode == "lora":
        if not isinstance(lora_r, int) or isinstance(lora_r, bool) or lora_r < 1:
            raise ConfigError(f"backbone {where}: lora_r must be a positive integer, got {lora_r!r}")
        if not 0.0 <= float(lora_dropout) < 1.0:
            raise ConfigError(f"backbone {where}: lora_dropout must be in [0, 1), got {lora_dropout!r}")
        from retain.models.lora import inject_lora

        inject_lora(body, r=lora_r, alpha=float(lora_alpha), dropout=float(lora_dropout), targets=lora_targets,
                    where=f"backbone {where}")
    for name, p in body.named_parameters():
        p.requires_grad_(mode == "lora" and "lora_" in name)
    del model  # the head (outside ``body``) keeps training in every mode


def check_text_config(config: Any, where: str) -> None:
    """Refuse what is not an encoder retain can pool: seq2seq and causal language models."""
    archs = [a for a in (getattr(config, "architectures", None) or []) if isinstance(a, str)]
    if getattr(config, "is_encoder_decoder", False) or any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        raise ConfigError(f"backbone {where}: {', '.join(archs) or config.model_type} is a generative language "
                          "model; hf: takes Vision Transformers and text encoders (BERT family) for now")
    if not isinstance(getattr(config, "hidden_size", None), int):
        raise ConfigError(f"backbone {where}: config.json of model type {config.model_type!r} has no hidden_size; "
                          "not an encoder retain can pool")


def check_tokenizer_fits(tokenizer: Any, config: Any, where: str, tokenizer_where: str) -> None:
    """A tokenizer whose ids run past the model's embedding table would index out of it (or, worse, read
    rows meant for other tokens): refused before any run."""
    vocab = getattr(config, "vocab_size", None)
    size = len(tokenizer)
    if isinstance(vocab, int) and size > vocab:
        raise ConfigError(f"backbone {where}: tokenizer {tokenizer_where} has {size:,} tokens but the model's "
                          f"embedding has {vocab:,} rows; they do not belong together (use the model's own tokenizer)")
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is None:
        raise ConfigError(f"backbone {where}: tokenizer {tokenizer_where} has no padding token")


def pad_id_of(tokenizer: Any) -> int:
    return int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
