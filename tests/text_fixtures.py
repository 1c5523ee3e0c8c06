"""Tiny text models and tasks the text tests make themselves: a BERT of a few thousand parameters with a
tokenizer built from a small vocabulary (saved with save_pretrained, as a real one is), and JSONL task
folders whose labels a model can learn from the words (each class has its own marker words)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
FILLER = [f"w{i}" for i in range(80)]
TASKS = {  # task -> label names; each label's texts carry two marker words of their own
    "news": ["world", "sports", "business"],
    "reviews": ["bad", "good"],
    "stars": ["bad", "good"],  # the same label set as reviews: a domain-IL pair
}
MARKERS = {f"{t}:{label}": [f"{t}{label}a", f"{t}{label}b"] for t, labels in TASKS.items() for label in labels}

ROOT = Path(__file__).resolve().parent.parent
REAL_MINILM = Path(os.environ.get("RETAIN_MODELS", ROOT / "models")) / "minilm-l6-v2"


def vocabulary() -> list[str]:
    return SPECIALS + FILLER + sorted({w for ws in MARKERS.values() for w in ws})


def save_tiny_bert(where: Path, *, layers: int = 2, hidden: int = 16, vocab: list[str] | None = None) -> Path:
    """A BERT with ``hidden`` width and its tokenizer, as save_pretrained writes them."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    torch.manual_seed(0)  # the same tiny BERT whichever test makes it first
    words = vocab or vocabulary()
    where.mkdir(parents=True, exist_ok=True)
    BertTokenizer(vocab={w: i for i, w in enumerate(words)}).save_pretrained(where)
    config = BertConfig(vocab_size=len(words), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=2 * hidden, max_position_embeddings=128, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    BertModel(config).save_pretrained(where)
    return where


def _text(rng: random.Random, markers: list[str], length: int) -> str:
    words = [rng.choice(FILLER) for _ in range(length)]
    for m in markers:
        words.insert(rng.randrange(len(words) + 1), m)
    return " ".join(words)


def write_tasks(root: Path, *, train: int = 40, test: int = 20, seed: int = 0, long_every: int = 0,
                tasks: dict[str, list[str]] | None = None) -> Path:
    """One folder per task (train.jsonl, test.jsonl, labels.json); every ``long_every``-th text is 150 words."""
    rng = random.Random(seed)
    for task, labels in (tasks or TASKS).items():
        folder = root / task
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "labels.json").write_text(json.dumps(labels))
        for split, n in (("train", train), ("test", test)):
            rows = []
            for i in range(n):
                label = labels[i % len(labels)]
                length = 150 if long_every and i % long_every == 0 else rng.randrange(3, 12)
                rows.append({"text": _text(rng, MARKERS.get(f"{task}:{label}", []), length), "label": label})
            (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root
