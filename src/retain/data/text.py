"""Text tasks on disk and their tokenisation, cached.

A text task is a folder with ``train.jsonl`` and ``test.jsonl`` (one ``{"text": ..., "label": ...}``
object per line, the label as its name) and, optionally, ``labels.json`` (the label names in
order; without it, the names in order of first appearance in ``train.jsonl``). The ``text-cl``
folder of the project's data (``../shared/data/text-cl``) holds 14 such tasks.

Tokenisation runs once per (texts, tokenizer, max length): :func:`tokenise` keeps the result in
``$RETAIN_CACHE/tokens/`` (default ``~/.cache/retain/tokens``) under the SHA-256 of the texts, the
tokenizer's files and the length, so a second run with the same data and tokenizer reads two
arrays instead of tokenising again; data folders are never written to (they may be read-only).
A cache file that does not read back as what was written is made again. Token ids are stored as
``int32``, one row per text, right-padded with :data:`PAD` (-1, never a token id) to the length
asked for: a text longer than ``max_length`` tokens (special tokens included) is cut, and how many
were cut is counted and returned, never silent.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from retain.errors import DataError

PAD = -1  # the padding id of stored token rows: no tokenizer uses it, so a row's length is (row >= 0).sum()
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
                   "merges.txt", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model", "added_tokens.json")
MAX_LINE = 1 << 20  # a JSONL line of more than 1 MiB is not a text example


@dataclass
class TextSplit:
    """The texts and label ids of one split of one task, with the digest of the file they came from."""

    texts: list[str]
    labels: np.ndarray  # int64 label ids into the task's label names
    digest: str  # SHA-256 of the file's bytes


@dataclass
class TextTask:
    name: str
    labels: list[str]
    train: TextSplit
    test: TextSplit


def _read_jsonl(path: Path, names: dict[str, int] | None, grow: bool) -> tuple[TextSplit, dict[str, int]]:
    """Texts and labels of ``path``; ``names`` maps label names to ids (grown with new names when ``grow``)."""
    if not path.is_file():
        raise DataError(f"{path}: missing (a text task needs train.jsonl and test.jsonl)")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.__class__.__name__}: {exc})") from None
    names = dict(names or {})
    texts, labels = [], []
    for n, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        if len(line) > MAX_LINE:
            raise DataError(f"{path}:{n}: a line of {len(line):,} bytes; expected one JSON example under 1 MiB")
        try:
            row = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}:{n}: not a JSON object ({exc.__class__.__name__}: {exc})") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or "label" not in row:
            raise DataError(f"{path}:{n}: expected an object with a string \"text\" and a \"label\"")
        label = row["label"]
        if isinstance(label, bool) or not isinstance(label, (str, int)):
            raise DataError(f"{path}:{n}: label must be a name or an integer id, got {label!r}")
        label = str(label)
        if label not in names:
            if not grow:
                raise DataError(f"{path}:{n}: label {label!r} is not one of the task's labels {sorted(names)}")
            names[label] = len(names)
        texts.append(row["text"])
        labels.append(names[label])
    if not texts:
        raise DataError(f"{path}: no examples")
    return TextSplit(texts, np.asarray(labels, dtype=np.int64), hashlib.sha256(raw).hexdigest()), names


def read_task(folder: Path | str) -> TextTask:
    """One text task from its folder (see the module docstring); DataError naming the file and line."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such text task folder")
    names: dict[str, int] | None = None
    labels_file = folder / "labels.json"
    if labels_file.is_file():
        try:
            declared = json.loads(labels_file.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{labels_file}: not JSON ({exc.__class__.__name__}: {exc})") from None
        if (not isinstance(declared, list) or not declared or not all(isinstance(x, (str, int)) for x in declared)
                or len({str(x) for x in declared}) != len(declared)):
            raise DataError(f"{labels_file}: expected a list of distinct label names")
        names = {str(x): i for i, x in enumerate(declared)}
    train, names = _read_jsonl(folder / "train.jsonl", names, grow=names is None)
    test, _ = _read_jsonl(folder / "test.jsonl", names, grow=False)
    return TextTask(folder.name, list(names), train, test)


def tokenizer_digest(folder: Path | str) -> str:
    """SHA-256 (16 hex digits) of a tokenizer directory's files: a changed vocabulary makes new caches and keys."""
    h = hashlib.sha256()
    found = False
    for name in TOKENIZER_FILES:
        f = Path(folder) / name
        if f.is_file():
            found = True
            h.update(name.encode())
            h.update(f.read_bytes())
    if not found:
        raise DataError(f"{folder}: no tokenizer files (expected one of {', '.join(TOKENIZER_FILES[:4])}, ...)")
    return h.hexdigest()[:16]


def cache_root() -> Path:
    return Path(os.environ.get("RETAIN_CACHE") or Path.home() / ".cache" / "retain") / "tokens"


@dataclass
class Tokens:
    """Token rows of one split: ``ids`` int32 N x max_length padded with PAD, ``lengths`` int64 N."""

    ids: Tensor
    lengths: Tensor
    cut: Tensor  # bool N: the texts cut to max_length
    cached: bool  # read from the cache (not tokenised in this call)

    @property
    def truncated(self) -> int:
        return int(self.cut.sum())


def _encode(texts: list[str], tokenizer: Any, max_length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    special = tokenizer.num_special_tokens_to_add(pair=False)
    if max_length <= special:
        raise DataError(f"max_length {max_length} leaves no room for text beside the tokenizer's {special} "
                        "special tokens")
    # The full lengths first (no special tokens, nothing cut), to count what max_length cuts; then
    # the rows as the tokenizer builds them, special tokens included, cut to max_length.
    full = tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    cut = np.asarray([len(toks) > max_length - special for toks in full], dtype=bool)
    rows = tokenizer(texts, add_special_tokens=True, truncation=True, max_length=max_length, verbose=False)["input_ids"]
    ids = np.full((len(texts), max_length), PAD, dtype=np.int32)
    lengths = np.zeros(len(texts), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        lengths[i] = len(row)
    return ids, lengths, cut


def tokenise(split: TextSplit, tokenizer: Any, tokenizer_id: str, max_length: int, *,
             cache: bool = True) -> Tokens:
    """``split``'s texts as token rows (see the module docstring); read from the cache when it holds them."""
    key = hashlib.sha256(f"{split.digest}|{len(split.texts)}|{tokenizer_id}|{max_length}|v1".encode()).hexdigest()[:24]
    path = cache_root() / f"{key}.npz"
    if cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                ids, lengths, cut = z["ids"], z["lengths"], z["cut"]
            n = len(split.texts)
            if ids.dtype == np.int32 and ids.shape == (n, max_length) and lengths.shape == cut.shape == (n,):
                return Tokens(torch.from_numpy(ids), torch.from_numpy(lengths.astype(np.int64)),
                              torch.from_numpy(cut.astype(bool)), True)
        except (OSError, ValueError, KeyError, EOFError):
            pass  # unreadable or foreign: made again below
    ids, lengths, cut = _encode(split.texts, tokenizer, max_length)
    if cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tokens-", suffix=".npz")
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.savez(fh, ids=ids, lengths=lengths, cut=cut)
                os.replace(tmp, path)  # whole or not at all
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        except OSError:
            pass  # a read-only cache folder: tokenised again next time, nothing else changes
    return Tokens(torch.from_numpy(ids), torch.from_numpy(lengths), torch.from_numpy(cut), False)


def load_tokenizer(spec: str, what: str = "tokenizer ") -> tuple[Any, str]:
    """(the tokenizer of ``spec``, its digest) from a directory or the local Hugging Face cache, offline."""
    from retain.hub import locate, offline

    where = locate(spec, what)
    digest = tokenizer_digest(where)
    offline()
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise DataError("text benchmarks need transformers (pip install 'retain[lora]')") from None
    try:
        tok = AutoTokenizer.from_pretrained(where, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - an unreadable tokenizer is the directory's fault
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise DataError(f"{what}{spec}: cannot load the tokenizer in {where} ({type(exc).__name__}: {first})") from None
    return tok, digest
