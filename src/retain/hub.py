"""Hugging Face directories, offline: where ``hf:SPEC`` lives on this machine, with the hub never reached.

Shared by the backbones (:mod:`retain.models.hf`) and the text benchmarks (their tokenizer), so both
find a model the same way: ``SPEC`` itself when it is a directory, else the snapshot of the model id
``SPEC`` in the local Hugging Face cache. Nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

from retain.errors import ConfigError


def offline() -> None:
    """No network at run time: the hub and transformers read local files only."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a bar per loaded model would bury the run's own output
        hf_logging.set_verbosity_error()
    except ImportError:
        pass


def hub_cache() -> str:
    try:
        from huggingface_hub.constants import HF_HUB_CACHE

        return str(HF_HUB_CACHE)
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        return os.path.expanduser("~/.cache/huggingface/hub")


def locate(spec: str, what: str = "backbone hf:") -> Path:
    """The local directory of ``spec``: ``spec`` itself when it is a directory, else the cached
    snapshot of the model id ``spec``. ConfigError naming both places when neither holds it."""
    path = Path(spec).expanduser()
    try:
        is_dir = path.is_dir()
        has_config = is_dir and (path / "config.json").is_file()
    except OSError as exc:  # a symlink loop, a name too long: the path itself is the problem
        raise ConfigError(f"{what}{spec}: cannot read {spec!r} ({exc.strerror or type(exc).__name__})") from None
    if is_dir:
        if not has_config:
            raise ConfigError(f"{what}{spec}: directory {path} has no config.json (write one with "
                              "save_pretrained, or `retain pretrain --out DIR`)")
        return path
    offline()
    looks_like_id = spec.count("/") <= 1 and not spec.startswith((".", "/", "~")) and spec.strip()
    if looks_like_id:
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(spec, local_files_only=True))
        except Exception:  # noqa: BLE001 - any miss (not cached, bad id) is the same answer to the user
            pass
    raise ConfigError(f"{what}{spec}: no directory {path.absolute()} and no model {spec!r} in the Hugging Face "
                      f"cache {hub_cache()}; retain never downloads (save one with save_pretrained, fetch it with "
                      f"scripts/fetch-models.py, or copy it where there is network)")
