"""Pretrained backbones by name, offline: ``hf:PATH_OR_ID`` (a Vision Transformer, or a text encoder
with its tokenizer (:mod:`retain.models.text`), through Hugging Face ``transformers``) and
``timm:NAME`` (a timm model, where timm is installed).

``hf:`` takes a local directory written by ``save_pretrained`` (``retain pretrain`` writes one)
or a model id already in the local Hugging Face cache (``hf:google/vit-base-patch16-224-in21k``,
the backbone of L2P and RanPAC). Nothing is ever downloaded: loading runs with the hub offline,
and a model that is in neither place is refused in one line that says where it was looked for.
The model's [CLS] output after the final layer norm is ``features(x)``; ``head`` is a new linear
classifier.

Inputs are brought to what the model expects per batch, on the device the model is on: a flat
vector of a square image is reshaped (784 -> 1 x 28 x 28), grey images are repeated to three
channels (or colour averaged to one), the image is resized bilinearly to the model's
``image_size`` and normalised with the mean and std of the directory's
``preprocessor_config.json`` (0.5 and 0.5, the ViT image processor's defaults, when there is
none). Benchmarks give pixels in [0, 1]; one that standardises its inputs (split-cifar*) names
its mean and std in ``--backbone-option input_mean=...`` and ``input_std=...`` so that they are
undone first.

The weights are part of each run's key (:func:`fingerprint`: every weight file, shard, index and
tokenizer file): pretraining again into the same directory makes new runs rather than reusing those of
the old weights. A directory is checked before any run (:func:`check_directory`, then one real load):
damaged or pickled weights, and weights whose keys do not fit the architecture, are refused in one line.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from retain.errors import ConfigError
from retain.hub import hub_cache as _hub_cache
from retain.hub import locate
from retain.hub import offline as _offline
from retain.models.registry import BACKBONES, register_backbone
from retain.models.text import set_mode

HF_PREFIX, TIMM_PREFIX = "hf:", "timm:"
#: The files whose bytes make a directory's fingerprint, in this order (whichever exist), then every weight
#: shard, index and tokenizer file (:func:`fingerprinted_files`); a directory of only these four hashes as
#: it did before shards and tokenizers counted, so its runs keep their keys.
WEIGHT_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "preprocessor_config.json")
MAX_HEADER = 100 << 20  # a safetensors header (JSON) above 100 MiB is not a model's


def read_config(spec: str) -> tuple[Any, dict[str, Any], Path]:
    """(the transformers config, the image processor's settings, the directory) of ``hf:spec``."""
    _offline()
    from transformers import AutoConfig

    where = locate(spec)
    try:
        config = AutoConfig.from_pretrained(where, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - an unreadable config is the directory's fault
        raise ConfigError(f"backbone hf:{spec}: cannot read {where / 'config.json'} "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    processor: dict[str, Any] = {}
    if (where / "preprocessor_config.json").is_file():
        try:
            processor = json.loads((where / "preprocessor_config.json").read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"backbone hf:{spec}: {where / 'preprocessor_config.json'} is not JSON "
                              f"({type(exc).__name__})") from None
    return config, processor, where


def modality_of(spec: str) -> str:
    """"image" for a ViT directory, "text" for an encoder with its tokenizer; ConfigError for anything else."""
    from retain.data.text import TOKENIZER_FILES
    from retain.models.text import check_text_config

    config, _, where = read_config(spec)
    if config.model_type == "vit":
        return "image"
    if not any((where / f).is_file() for f in TOKENIZER_FILES):
        raise ConfigError(f"backbone hf:{spec}: model type {config.model_type!r} is not a ViT and {where} has no "
                          "tokenizer files; hf: loads Vision Transformers and text encoders saved with their "
                          "tokenizer (tokenizer.save_pretrained(DIR))")
    check_text_config(config, f"hf:{spec}")
    return "text"


def weight_files(where: Path) -> list[Path]:
    """The directory's weight files: safetensors (one file or shards) or, failing them, pickles."""
    safe = sorted(where.glob("*.safetensors"))
    return safe or sorted(where.glob("pytorch_model*.bin"))


def _check_safetensors(path: Path, spec: str) -> None:
    """A safetensors file whose header does not parse, or whose tensors run past its end, is refused by
    name before any run (reading it would fail halfway, or allocate what the header claims)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n < 2 or n > MAX_HEADER or 8 + n > size:
            raise ConfigError(f"backbone hf:{spec}: {path} is not a safetensors file (empty, truncated or a header "
                              f"of {n:,} bytes in a file of {size:,}); save the model again")
        try:
            header = json.loads(fh.read(n))
        except (ValueError, UnicodeDecodeError):
            raise ConfigError(f"backbone hf:{spec}: {path} has a corrupt safetensors header; save the model again"
                              ) from None
    if not isinstance(header, dict):
        raise ConfigError(f"backbone hf:{spec}: {path} has a corrupt safetensors header; save the model again")
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            raise ConfigError(f"backbone hf:{spec}: {path}: tensor {name!r} has no valid data offsets; save the "
                              "model again")
        end = max(end, offsets[1])
    if 8 + n + end > size:
        raise ConfigError(f"backbone hf:{spec}: {path} is truncated ({size:,} bytes; its header needs "
                          f"{8 + n + end:,}); save or fetch the model again")


def check_directory(spec: str) -> Path:
    """Refuse, before any run, a directory whose weights cannot load safely and whole: none at all,
    only pickles (retain never unpickles a model), a damaged safetensors file, or a config whose
    attention heads do not divide its width."""
    config, _, where = read_config(spec)
    files = weight_files(where)
    if not files:
        raise ConfigError(f"backbone hf:{spec}: {where} has no weights (model.safetensors); save the model with "
                          "save_pretrained")
    if files[0].suffix == ".bin":
        raise ConfigError(f"backbone hf:{spec}: {where} holds only {files[0].name}, a pickle; retain loads "
                          "safetensors only (re-save it with save_pretrained(DIR, safe_serialization=True))")
    for f in files:
        _check_safetensors(f, spec)
    width, heads = getattr(config, "hidden_size", None), getattr(config, "num_attention_heads", None)
    if isinstance(width, int) and isinstance(heads, int) and (heads < 1 or width % heads):
        raise ConfigError(f"backbone hf:{spec}: {where / 'config.json'}: hidden_size {width} is not divisible by "
                          f"num_attention_heads {heads}")
    return where


def fingerprinted_files(where: Path) -> list[Path]:
    from retain.data.text import TOKENIZER_FILES

    first = [where / f for f in WEIGHT_FILES if (where / f).is_file()]
    more = sorted({*where.glob("*.safetensors"), *where.glob("*.bin"), *where.glob("*.index.json")} - set(first))
    extra = [where / f for f in (*TOKENIZER_FILES, "1_Pooling/config.json") if (where / f).is_file()]
    return first + more + extra


_FINGERPRINTS: dict[tuple, str] = {}


def fingerprint(spec: str) -> str:
    """SHA-256 (first 16 hex digits) of the directory's config, weights (every shard), processor and
    tokenizer files; cached by their sizes and modification times, so a 300 MB file is read once per
    process. The directory is checked first (:func:`check_directory`)."""
    where = check_directory(spec)
    files = fingerprinted_files(where)
    stamp = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if stamp not in _FINGERPRINTS:
        h = hashlib.sha256()
        for f in files:
            h.update(f.name.encode())
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        _verify_loads(spec)  # once per weights and process: a run must never find them unloadable
        _FINGERPRINTS[stamp] = h.hexdigest()[:16]
    return _FINGERPRINTS[stamp]


#: The model :func:`_verify_loads` loaded last, by directory and file stamp: a run in the same process
#: (``--workers 1``) starts from a copy of it instead of reading the weights a second time.
_VERIFIED: dict[tuple, nn.Module] = {}


def _stamp(where: Path) -> tuple:
    return (str(where),) + tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in fingerprinted_files(where))


def _verify_loads(spec: str) -> None:
    """Load the weights once, as a run will, so that keys that do not fit the architecture are refused at
    validation (one line, nothing written) rather than by the first run."""
    config, _, where = read_config(spec)
    if _on_meta():
        return
    if config.model_type == "vit":
        from transformers import ViTModel

        model = load_pretrained(ViTModel, where, spec, add_pooling_layer=False)
    else:
        from transformers import AutoModel

        model = load_pretrained(AutoModel, where, spec, **_encoder_kwargs(config))
    _VERIFIED.clear()  # one model held at a time
    _VERIFIED[_stamp(where)] = model


def _pretrained(cls: Any, where: Path, spec: str, **kwargs: Any) -> nn.Module:
    """The weights of ``where`` as a fresh module: a copy of the one validation loaded in this process, or
    read from disk (and checked) by :func:`load_pretrained`."""
    import copy

    held = _VERIFIED.get(_stamp(where))
    return copy.deepcopy(held) if held is not None else load_pretrained(cls, where, spec, **kwargs)


def load_pretrained(cls: Any, where: Path, spec: str, **kwargs: Any) -> nn.Module:
    """``cls.from_pretrained(where)`` that loads every weight the architecture declares, or is refused in one
    line naming the missing, unexpected and mis-shaped keys (transformers would start the missing ones from
    random numbers and say so only at a log level retain hides). ``pooler.*`` may go unused: retain pools
    itself."""
    try:
        model, info = cls.from_pretrained(where, local_files_only=True, output_loading_info=True, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a file that passed the checks but does not load: its fault
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ConfigError(f"backbone hf:{spec}: cannot load the weights in {where} ({type(exc).__name__}: "
                          f"{first[:300]})") from None
    missing = sorted(info.get("missing_keys") or [])
    unexpected = sorted(k for k in info.get("unexpected_keys") or [] if "pooler." not in k)
    wrong = sorted(str(k[0]) if isinstance(k, (tuple, list)) else str(k) for k in info.get("mismatched_keys") or [])
    if missing or unexpected or wrong:
        parts = [f"{label} {len(keys)} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
        raise ConfigError(f"backbone hf:{spec}: the weights in {where} do not fit its config.json: {'; '.join(parts)}; "
                          "retain does not start a pretrained model from random weights")
    return model


def image_shape_of(input_shape: tuple[int, ...], where: str) -> tuple[int, int, int]:
    """C x H x W of a benchmark's inputs: images as they are; a flat vector of a square grey image
    (784) or of three square channels (3072) as that image."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        return shape  # type: ignore[return-value]
    if len(shape) == 2:
        return (1, *shape)
    if len(shape) == 1:
        for c in (1, 3):
            side = math.isqrt(shape[0] // c)
            if shape[0] % c == 0 and side * side * c == shape[0]:
                return (c, side, side)
    raise ConfigError(f"{where}: needs image inputs (C x H x W, or a flat square image), got input shape {shape}")


def _floats(name: str, values: tuple[float, ...] | None, channels: int) -> Tensor | None:
    if values is None:
        return None
    vals = [float(v) for v in values]
    if len(vals) not in (1, channels) or not all(math.isfinite(v) for v in vals):
        raise ConfigError(f"backbone option {name} must be 1 or {channels} finite numbers, got {list(values)}")
    return torch.tensor(vals * (channels // len(vals))).reshape(-1, 1, 1)


def _per_channel(values, channels: int) -> Tensor:
    """An image processor's mean or std (one number or one per channel) as C x 1 x 1 for ``channels``."""
    v = torch.tensor(values, dtype=torch.float32).flatten()
    if len(v) != channels:
        v = v.mean().repeat(channels)  # one number, or colour statistics for a grey model
    return v.reshape(-1, 1, 1)


class ToModelInput(nn.Module):
    """A batch as the benchmark gives it -> pixel values as the model was trained on (see the module
    docstring): reshape, undo the benchmark's standardisation, match channels, resize, normalise."""

    def __init__(self, image_shape: tuple[int, int, int], channels: int, size: tuple[int, int], mean, std,
                 input_mean: Tensor | None = None, input_std: Tensor | None = None):
        super().__init__()
        self.image_shape, self.channels, self.size = image_shape, channels, size
        self.register_buffer("mean", _per_channel(mean, channels), persistent=False)
        self.register_buffer("std", _per_channel(std, channels), persistent=False)
        self.undo = input_mean is not None or input_std is not None
        c = image_shape[0]
        self.register_buffer("in_mean", input_mean if input_mean is not None else torch.zeros(c, 1, 1),
                             persistent=False)
        self.register_buffer("in_std", input_std if input_std is not None else torch.ones(c, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        x = x.reshape(len(x), *self.image_shape).float()
        if self.undo:
            x = x * self.in_std + self.in_mean
        if x.shape[1] != self.channels:
            x = x.mean(1, keepdim=True) if self.channels == 1 else x.expand(-1, self.channels, -1, -1)
        if tuple(x.shape[2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        return (x - self.mean) / self.std


class HFViT(nn.Module):
    """A transformers ``ViTModel`` (no pooler) with retain's interface: ``features(x)`` is the
    final [CLS] token, ``head`` the classifier. ``embed``, ``run_layers`` and ``final_norm`` expose
    the steps of its forward pass for prompt methods (prompts between them; a layer given a
    ``(key, value)`` prefix attends to it as prefix tuning does)."""

    def __init__(self, vit: nn.Module, num_classes: int, prepare: ToModelInput):
        super().__init__()
        self.vit, self.prepare = vit, prepare
        self.feature_dim = int(vit.config.hidden_size)
        self.head = nn.Linear(self.feature_dim, num_classes)

    # ---- plain forward (transformers' own) ----------------------------------------------------
    def features(self, x: Tensor) -> Tensor:
        return self.vit(pixel_values=self.prepare(x)).last_hidden_state[:, 0]

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    # ---- the same forward in steps, for prompts -----------------------------------------------
    @property
    def layers(self) -> nn.ModuleList:
        layers = getattr(self.vit, "layers", None)
        if layers is None:
            raise ConfigError("prompt methods need transformers' ViT with `layers` (transformers >= 5); this "
                              f"{type(self.vit).__name__} has none")
        return layers

    def embed(self, x: Tensor) -> Tensor:
        """Patch embeddings with positions, [CLS] first: (B, 1 + patches, D)."""
        return self.vit.embeddings(self.prepare(x))

    def run_layers(self, tokens: Tensor, prefixes: dict[int, tuple[Tensor, Tensor]] | None = None) -> Tensor:
        """The encoder layers over ``tokens``; layer ``i`` in ``prefixes`` attends also to the key
        and value prefixes ``prefixes[i]`` (each B x P x D)."""
        for i, layer in enumerate(self.layers):
            prefix = prefixes.get(i) if prefixes else None
            tokens = layer(tokens, None) if prefix is None else _layer_with_prefix(layer, tokens, *prefix)
        return tokens

    def final_norm(self, tokens: Tensor) -> Tensor:
        return self.vit.layernorm(tokens)


def _layer_with_prefix(layer: nn.Module, x: Tensor, pk: Tensor, pv: Tensor) -> Tensor:
    """transformers' ViTLayer forward with key/value prefixes (prefix tuning, Li & Liang 2021):
    the prefixes join the keys and values after their projections; queries are the tokens' own."""
    att = layer.attention
    b, t, _ = x.shape
    heads, hd = att.num_attention_heads, att.head_dim
    split = lambda z: z.reshape(b, -1, heads, hd).transpose(1, 2)  # noqa: E731
    h = layer.layernorm_before(x)
    q, k, v = split(att.q_proj(h)), split(torch.cat([pk, att.k_proj(h)], 1)), split(torch.cat([pv, att.v_proj(h)], 1))
    drop = att.attention_dropout if att.training else 0.0
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, scale=att.scaling)
    x = x + layer.dropout(att.o_proj(out.transpose(1, 2).reshape(b, t, -1)))
    return x + layer.dropout(layer.mlp(layer.layernorm_after(x)))


def build_hf_vit(vit: nn.Module, processor: dict[str, Any], input_shape: tuple[int, ...], num_classes: int,
                 where: str, input_mean=None, input_std=None) -> HFViT:
    """Wrap a ViTModel for ``input_shape`` inputs with the image processor's size and statistics."""
    cfg = vit.config
    image = image_shape_of(input_shape, where)
    size = cfg.image_size if isinstance(cfg.image_size, (tuple, list)) else (cfg.image_size, cfg.image_size)
    mean, std = processor.get("image_mean", 0.5), processor.get("image_std", 0.5)
    prepare = ToModelInput(image, int(cfg.num_channels), tuple(int(s) for s in size), mean, std,
                           _floats("input_mean", input_mean, image[0]), _floats("input_std", input_std, image[0]))
    return HFViT(vit, num_classes, prepare)


def _on_meta() -> bool:
    return torch.empty(0).device.type == "meta"  # retain's pre-run check builds backbones on the meta device


def _hf_factory(name: str):
    spec = name[len(HF_PREFIX):]

    def factory(input_shape: tuple[int, ...], num_classes: int, input_mean: tuple[float, ...] | None = None,
                input_std: tuple[float, ...] | None = None, mode: str = "full", pooling: str = "auto",
                lora_r: int = 8, lora_alpha: float = 16.0, lora_dropout: float = 0.0,
                lora_targets: str = "auto", head_lr_scale: float = 100.0) -> nn.Module:
        """A pretrained transformers model from a local directory or the Hugging Face cache (never
        downloaded): a ViT for images, a text encoder (BERT family, with its tokenizer) for text.

        Options: mode (full: every weight trains; frozen: only the head; lora: LoRA adapters on the
        attention's query and value, or lora_targets, through PEFT), lora_r, lora_alpha, lora_dropout;
        text: pooling (auto: the directory's sentence-transformers pooling, else cls; mean; cls),
        head_lr_scale (the new head's learning rate over the run's; default 100);
        images: input_mean, input_std (the benchmark's own standardisation, undone first)."""
        if not spec:
            raise ConfigError("hf: needs a directory or model id, e.g. --backbone hf:pretrained/vit-mnist")
        modality = modality_of(spec)
        config, processor, where = read_config(spec)
        lora = {"lora_r": lora_r, "lora_alpha": lora_alpha, "lora_dropout": lora_dropout, "lora_targets": lora_targets}
        if modality == "text":
            if input_mean is not None or input_std is not None:
                raise ConfigError(f"backbone {name}: input_mean and input_std are image options; {name} is a text "
                                  "encoder")
            if not (isinstance(head_lr_scale, (int, float)) and 0 < head_lr_scale <= 1e4):
                raise ConfigError(f"backbone {name}: head_lr_scale must be a number in (0, 10000], got "
                                  f"{head_lr_scale!r}")
            return _text_encoder(spec, config, where, num_classes, mode, pooling, lora, float(head_lr_scale))
        if pooling != "auto" or head_lr_scale != 100.0:
            raise ConfigError(f"backbone {name}: pooling and head_lr_scale are text options; {name} is a Vision "
                              "Transformer")
        from transformers import ViTModel

        if _on_meta():  # parameter count only: the architecture, no weights read
            vit = ViTModel(config, add_pooling_layer=False)
        else:
            vit = _pretrained(ViTModel, where, spec, add_pooling_layer=False)
        model = build_hf_vit(vit, processor, input_shape, num_classes, name, input_mean, input_std)
        set_mode(model, model.vit, mode, where=name, **lora)
        return model

    factory.fingerprint = lambda: fingerprint(spec)  # type: ignore[attr-defined]  # see RunConfig.resolve
    factory.modality = lambda: modality_of(spec)  # type: ignore[attr-defined]
    factory.tokenizer = spec  # type: ignore[attr-defined]  # a text benchmark's default tokenizer
    factory.check_tokenizer = lambda other: _check_other_tokenizer(spec, other)  # type: ignore[attr-defined]
    return factory


def _check_other_tokenizer(spec: str, other: str) -> None:
    from retain.data.text import load_tokenizer
    from retain.models.text import check_tokenizer_fits

    config, _, where = read_config(spec)
    tokenizer, _ = load_tokenizer(other, what="benchmark option tokenizer=")
    check_tokenizer_fits(tokenizer, config, f"hf:{spec}", other)


def _encoder_kwargs(config: Any) -> dict[str, Any]:
    """retain pools itself: the pooler of the BERT-like models that have one is not built."""
    return {"add_pooling_layer": False} if config.model_type in ("bert", "roberta", "xlm-roberta", "camembert") else {}


def _text_encoder(spec: str, config: Any, where: Path, num_classes: int, mode: str, pooling: str,
                  lora: dict[str, Any], head_lr_scale: float) -> nn.Module:
    from transformers import AutoModel

    from retain.data.text import load_tokenizer
    from retain.models.text import POOLINGS, TextEncoder, check_tokenizer_fits, pad_id_of, sentence_pooling

    if pooling not in POOLINGS:
        raise ConfigError(f"backbone hf:{spec}: pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    tokenizer, _ = load_tokenizer(spec, what="backbone hf:")
    check_tokenizer_fits(tokenizer, config, f"hf:{spec}", str(where))
    # retain pools itself: the pooler of the BERT-like models that have one is not built
    kwargs = _encoder_kwargs(config)
    if _on_meta():
        encoder = AutoModel.from_config(config, **kwargs)
    else:
        encoder = _pretrained(AutoModel, where, spec, **kwargs)
    model = TextEncoder(encoder, num_classes, pooling=sentence_pooling(where) if pooling == "auto" else pooling,
                        pad_id=pad_id_of(tokenizer), head_lr_scale=head_lr_scale)
    set_mode(model, model.encoder, mode, where=f"hf:{spec}", **lora)
    return model


def new_vit(image: tuple[int, int, int], *, patch: int, dim: int, depth: int, heads: int, mlp_ratio: float):
    """A randomly initialised transformers ViTModel (no pooler, no dropout) for C x H x W images."""
    from transformers import ViTConfig, ViTModel

    for name, v in (("patch", patch), ("dim", dim), ("depth", depth), ("heads", heads)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"hf-vit: {name} must be a positive integer, got {v!r}")
    if image[1] != image[2] or image[1] % patch:
        raise ConfigError(f"hf-vit: needs square images whose side patch {patch} divides, got {image[1]}x{image[2]}")
    if dim % heads or not mlp_ratio > 0:
        raise ConfigError(f"hf-vit: dim {dim} must be divisible by heads {heads}, and mlp_ratio > 0")
    config = ViTConfig(image_size=image[1], patch_size=patch, num_channels=image[0], hidden_size=dim,
                       num_hidden_layers=depth, num_attention_heads=heads, intermediate_size=int(dim * mlp_ratio),
                       hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return ViTModel(config, add_pooling_layer=False)


def default_patch(side: int) -> int:
    """The largest usual patch size that cuts ``side`` into at least two patches (28 -> 7, 32 -> 16)."""
    return next(p for p in (16, 8, 7, 4, 2, 1) if side % p == 0 and side // p >= 2 or p == 1)


@register_backbone("hf-vit")
def hf_vit(input_shape: tuple[int, ...], num_classes: int, patch: int | None = None, dim: int = 64, depth: int = 4,
           heads: int = 4, mlp_ratio: float = 2.0) -> HFViT:
    """A transformers ViT from scratch (random weights; what `retain pretrain` trains), width 64, 4 layers."""
    image = image_shape_of(input_shape, "hf-vit")
    vit = new_vit(image, patch=patch or default_patch(image[1]), dim=dim, depth=depth, heads=heads,
                  mlp_ratio=mlp_ratio)
    return build_hf_vit(vit, {}, input_shape, num_classes, "hf-vit")


class TimmModel(nn.Module):
    """A timm model without its classifier (``num_classes=0``: pooled features) and a new ``head``."""

    def __init__(self, body: nn.Module, num_classes: int, prepare: ToModelInput):
        super().__init__()
        self.body, self.prepare = body, prepare
        self.feature_dim = int(body.num_features)
        self.head = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(self.prepare(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _timm_factory(name: str):
    model_name = name[len(TIMM_PREFIX):]

    def factory(input_shape: tuple[int, ...], num_classes: int, input_mean: tuple[float, ...] | None = None,
                input_std: tuple[float, ...] | None = None) -> TimmModel:
        """A timm model by name with its pretrained weights from the local Hugging Face cache.

        Options: input_mean, input_std (the benchmark's own standardisation, undone first)."""
        _offline()
        try:
            import timm
        except ImportError:
            raise ConfigError(f"backbone {name}: timm is not installed (pip install timm)") from None
        try:
            body = timm.create_model(model_name, pretrained=not _on_meta(), num_classes=0)
        except Exception as exc:  # noqa: BLE001 - unknown name or weights not cached: one line either way
            raise ConfigError(f"backbone {name}: cannot create it offline from the Hugging Face cache {_hub_cache()} "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
        cfg = body.pretrained_cfg
        image = image_shape_of(input_shape, name)
        size = tuple(cfg.get("input_size", (3, 224, 224)))
        prepare = ToModelInput(image, int(size[0]), size[1:], cfg.get("mean", 0.5), cfg.get("std", 0.5),
                               _floats("input_mean", input_mean, image[0]), _floats("input_std", input_std, image[0]))
        return TimmModel(body, num_classes, prepare)

    return factory


def resolve(name: str) -> bool:
    """Register ``hf:...`` and ``timm:...`` names on demand (a :meth:`Registry.add_resolver` resolver)."""
    if name.startswith(HF_PREFIX):
        register_backbone(name)(_hf_factory(name))
        return True
    if name.startswith(TIMM_PREFIX):
        register_backbone(name)(_timm_factory(name))
        return True
    return False


BACKBONES.add_resolver(resolve)
