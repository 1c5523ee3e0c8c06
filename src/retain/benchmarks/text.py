"""Text task streams: ``text-cl`` (the project's 14 text-classification tasks, or any folder laid out like
them), ``text:PATH`` (a user's folder of tasks), and :func:`text_from_tasks` for Python.

A stream is a list of task folders (:mod:`retain.data.text`). ``stream`` names a published one or
lists task names:

- ``standard`` (= ``standard-1``), ``standard-2``, ``standard-3``: the 4-task "standard CL benchmark"
  in O-LoRA's orders 1-3 (Wang et al. 2023), with ``yelp`` standing in for Yahoo Answers, which the
  data at hand lacks: dbpedia, amazon, yelp, agnews (1); dbpedia, amazon, agnews, yelp (2); yelp,
  amazon, agnews, dbpedia (3).
- ``long`` (= ``long-4``), ``long-5``, ``long-6``: O-LoRA's 15-task long sequence, orders 4-6 (after
  Razdaibiedina et al. 2023), less Yahoo: 14 tasks.
- ``agnews,dbpedia,...``: any tasks of the folder, in that order.

``--tasks N`` keeps the first N tasks of the stream. Scenarios: ``class-il`` (default: each task adds
its own labels to one head), ``task-il`` (the same label space; evaluation masks other tasks' labels),
``domain-il`` (one label space shared by every task: their label names must coincide, as Amazon's
and Yelp's five ratings do). ``train_per_task`` / ``test_per_task`` keep that many examples of each
task, drawn once with a fixed seed (the same for every run seed, so seeds differ in the model only).

Texts are tokenised by the run's tokenizer (``tokenizer``: by default the backbone's own, ``hf:DIR``)
once per data, tokenizer and ``max_length``, and cached; how many texts were cut to ``max_length`` is
in ``info["truncated"]`` and printed by ``retain run``. Test sets are kept sorted by length, so an
evaluation batch holds texts of similar length (accuracy does not depend on the order).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from retain.benchmarks.base import Benchmark, Experience
from retain.benchmarks.builders import check_tasks
from retain.benchmarks.registry import BENCHMARKS, register_benchmark
from retain.data.text import PAD, TextSplit, TextTask, load_tokenizer, read_task, tokenise
from retain.errors import ConfigError, DataError

STREAMS: dict[str, tuple[str, ...]] = {
    "standard-1": ("dbpedia", "amazon", "yelp", "agnews"),
    "standard-2": ("dbpedia", "amazon", "agnews", "yelp"),
    "standard-3": ("yelp", "amazon", "agnews", "dbpedia"),
    "long-4": ("mnli", "cb", "wic", "copa", "qqp", "boolq", "rte", "imdb", "yelp", "amazon", "sst2", "dbpedia",
               "agnews", "multirc"),
    "long-5": ("multirc", "boolq", "wic", "mnli", "cb", "copa", "qqp", "rte", "imdb", "sst2", "dbpedia", "agnews",
               "yelp", "amazon"),
    "long-6": ("yelp", "amazon", "mnli", "cb", "copa", "qqp", "rte", "imdb", "sst2", "dbpedia", "agnews", "multirc",
               "boolq", "wic"),
}
ALIASES = {"standard": "standard-1", "long": "long-4"}
#: Training defaults of text streams on a pretrained encoder: Adam, small batches, a rate for full
#: fine-tuning of the encoder (its new head trains 100x faster: retain.models.text; LoRA wants ~1e-3)
TEXT_DEFAULTS = {"epochs": 1, "batch_size": 16, "lr": 1e-4, "optimizer": "adam"}
MAX_LENGTH = 512
TEXT_PREFIX = "text:"


class TokenRows:
    """The transform of text experiences: stored token rows go to the model as they are (the model
    cuts the padding and makes the attention mask, :class:`retain.models.text.TextEncoder`)."""

    def __call__(self, x: Tensor) -> Tensor:
        return x


class HashedBagOfTokens:
    """Token rows -> L1-normalised counts of their ids hashed into ``bins`` buckets: a cheap, model-free
    description of a batch's words, for the task-dissimilarity probe (pixels' random features mean
    nothing for token ids)."""

    def __init__(self, bins: int = 1024):
        self.bins = bins

    def __call__(self, x: Tensor) -> Tensor:
        keep = x >= 0
        ids = torch.where(keep, x.long() % self.bins, torch.zeros_like(x, dtype=torch.long))
        out = torch.zeros(len(x), self.bins)
        out.scatter_add_(1, ids.cpu(), keep.float().cpu())
        return out / out.sum(1, keepdim=True).clamp_min(1.0)


def data_root(data_dir: Any, what: str) -> Path:
    """The folder of task folders: ``data_dir`` itself, or its ``text-cl`` subfolder; else ``$RETAIN_DATA``'s."""
    given = data_dir if data_dir is not None else os.environ.get("RETAIN_DATA")
    if given is None:
        raise DataError(f"{what} needs a data directory: pass --data-dir (e.g. ../shared/data/text-cl) or set "
                        "RETAIN_DATA")
    root = Path(given)
    for folder in (root, root / "text-cl"):
        if folder.is_dir() and any((p / "train.jsonl").is_file() for p in folder.iterdir() if p.is_dir()):
            return folder
    raise DataError(f"{root}: no text tasks (folders with train.jsonl and test.jsonl) there or in {root / 'text-cl'}")


def stream_tasks(stream: str, root: Path, what: str) -> list[str]:
    """The task names of ``stream`` (a published stream's name, or names separated by commas)."""
    name = ALIASES.get(stream, stream)
    if name in STREAMS:
        return list(STREAMS[name])
    names = [s.strip() for s in str(stream).split(",") if s.strip()]
    available = sorted(p.name for p in root.iterdir() if (p / "train.jsonl").is_file())
    unknown = [n for n in names if n not in available]
    if not names or unknown:
        from retain.suggest import did_you_mean

        bad = unknown[0] if unknown else stream
        raise ConfigError(f"{what}: stream {bad!r}{did_you_mean(bad, [*STREAMS, *ALIASES, *available])} is neither a "
                          f"published stream ({', '.join([*ALIASES, *STREAMS])}) nor a task of {root} "
                          f"({', '.join(available)})")
    if len(set(names)) != len(names):
        raise ConfigError(f"{what}: stream {stream!r} names a task twice")
    return names


def _keep(n: int, keep: int | None, seed: int) -> np.ndarray:
    if keep is None or keep >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:keep])


def _positive(name: str, value: Any, what: str) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ConfigError(f"{what}: {name} must be a positive integer, got {value!r}")


def text_from_tasks(tasks: Sequence[TextTask], *, tokenizer: str, max_length: int = 128, scenario: str | None = None,
                    train_per_task: int | None = None, test_per_task: int | None = None, name: str = "text",
                    cache: bool = True, info: dict | None = None) -> Benchmark:
    """A benchmark of ``tasks`` in that order, tokenised by the tokenizer of the directory or cached model
    ``tokenizer`` (see the module docstring for the scenarios and options)."""
    scenario = scenario or "class-il"
    if scenario not in ("class-il", "task-il", "domain-il"):
        raise ConfigError(f"{name}: scenario must be class-il, task-il or domain-il, got {scenario!r}")
    if not isinstance(max_length, int) or isinstance(max_length, bool) or not 2 < max_length <= MAX_LENGTH:
        raise ConfigError(f"{name}: max_length must be an integer in 3..{MAX_LENGTH}, got {max_length!r}")
    _positive("train_per_task", train_per_task, name)
    _positive("test_per_task", test_per_task, name)
    tok, tok_id = load_tokenizer(tokenizer, what=f"{name}: tokenizer ")
    if scenario == "domain-il":
        first = set(tasks[0].labels)
        odd = [t for t in tasks if set(t.labels) != first]
        if odd:
            raise ConfigError(f"{name}: domain-il needs one label set for every task; {odd[0].name} has "
                              f"{', '.join(odd[0].labels)} but {tasks[0].name} has {', '.join(tasks[0].labels)} "
                              "(use class-il or task-il)")
    label_names: list[str] = [] if scenario != "domain-il" else list(tasks[0].labels)
    exps, truncated = [], {}
    for t, task in enumerate(tasks):
        if scenario == "domain-il":
            ids = np.asarray([label_names.index(n) for n in task.labels], dtype=np.int64)
        else:
            ids = np.arange(len(label_names), len(label_names) + len(task.labels), dtype=np.int64)
            label_names += [f"{task.name}:{n}" for n in task.labels]
        parts = {}
        for split, keep, salt in (("train", train_per_task, 0), ("test", test_per_task, 1)):
            data = getattr(task, split)
            rows = _keep(len(data.texts), keep, seed=1000 * t + salt)
            if len(rows) < len(data.texts):  # only the texts kept are tokenised (and cached under their draw)
                data = TextSplit([data.texts[i] for i in rows], data.labels[rows],
                                 f"{data.digest}:rows:{keep}:{1000 * t + salt}")
            tokens = tokenise(data, tok, tok_id, max_length, cache=cache)
            x, lengths, y = tokens.ids, tokens.lengths, torch.from_numpy(ids[data.labels])
            if split == "test":  # similar lengths together: evaluation batches carry little padding
                order = torch.argsort(lengths, stable=True)
                x, lengths, y = x[order], lengths[order], y[order]
            parts[split] = (x, y, lengths)
            truncated.setdefault(task.name, {})[split] = [tokens.truncated, len(rows)]
        exps.append(Experience(
            task_id=t, origin=t, name=f"{name}/{task.name}", classes=tuple(int(c) for c in ids),
            train_x=parts["train"][0], train_y=parts["train"][1], test_x=parts["test"][0], test_y=parts["test"][1],
            transform=TokenRows(), lengths=parts["train"][2], featurize=HashedBagOfTokens()))
    info = {**(info or {}), "modality": "text", "tasks": [t.name for t in tasks], "label_names": label_names,
            "max_length": max_length, "tokenizer_files": tok_id, "truncated": truncated, "pad": PAD}
    return Benchmark(name, exps, scenario, (max_length,), len(label_names), info)


def _stream(name: str, root: Path, stream: str | None, tasks: int | None, default_stream: str | None) -> list[TextTask]:
    if stream is None and default_stream is None:
        names = sorted(p.name for p in root.iterdir() if (p / "train.jsonl").is_file())
    else:
        names = stream_tasks(stream or default_stream, root, name)
    if tasks is not None:
        check_tasks(name, tasks, range(1, len(names) + 1))
        names = names[:tasks]
    return [read_task(root / n) for n in names]


@register_benchmark("text-cl", modality="text", **TEXT_DEFAULTS)
def text_cl(*, tasks: int | None = None, seed: int = 0, scenario: str | None = None, data_dir=None,
            stream: str = "standard", tokenizer: str | None = None, max_length: int = 128,
            train_per_task: int | None = None, test_per_task: int | None = None, cache: bool = True) -> Benchmark:
    """Text classification tasks (../shared/data/text-cl): the 4-task standard CL benchmark (class-IL).

    Options: stream (standard, standard-2, standard-3, long, long-5, long-6, or task names joined by
    commas), tokenizer (default: the backbone's), max_length (tokens, default 128), train_per_task,
    test_per_task (examples kept per task, fixed draw), cache (tokenise once; default true)."""
    del seed  # the tasks and their examples are the same for every seed
    if tokenizer is None:
        raise ConfigError("text-cl needs a tokenizer: run it with a text backbone (--backbone hf:DIR) or pass "
                          "--benchmark-option tokenizer=DIR")
    root = data_root(data_dir, "text-cl")
    return text_from_tasks(_stream("text-cl", root, stream, tasks, "standard"), tokenizer=tokenizer,
                           max_length=max_length, scenario=scenario, train_per_task=train_per_task,
                           test_per_task=test_per_task, name="text-cl", cache=cache, info={"stream": stream})


def _folder_factory(name: str):
    root_text = name[len(TEXT_PREFIX):]

    def factory(*, tasks: int | None = None, seed: int = 0, scenario: str | None = None, data_dir=None,
                stream: str | None = None, tokenizer: str | None = None, max_length: int = 128,
                train_per_task: int | None = None, test_per_task: int | None = None, cache: bool = True) -> Benchmark:
        """Your own text tasks: PATH holds one folder per task (train.jsonl, test.jsonl, optional labels.json).

        Options: stream (task names joined by commas; default every task in name order), tokenizer,
        max_length, train_per_task, test_per_task, cache, as for text-cl. ``data_dir`` is not used."""
        del seed, data_dir
        if not root_text:
            raise ConfigError("text: needs a path, e.g. --benchmark text:data/my-tasks")
        if tokenizer is None:
            raise ConfigError(f"{name} needs a tokenizer: run it with a text backbone (--backbone hf:DIR)")
        root = Path(root_text)
        if not root.is_dir():
            raise DataError(f"{name}: no directory {root.absolute()}")
        return text_from_tasks(_stream(name, root, stream, tasks, None), tokenizer=tokenizer, max_length=max_length,
                               scenario=scenario, train_per_task=train_per_task, test_per_task=test_per_task,
                               name=name, cache=cache, info={"root": str(root)})

    return factory


def resolve(name: str) -> bool:
    """Register ``text:PATH`` names on demand (a :meth:`Registry.add_resolver` resolver)."""
    if not name.startswith(TEXT_PREFIX):
        return False
    register_benchmark(name, modality="text", **TEXT_DEFAULTS)(_folder_factory(name))
    return True


BENCHMARKS.add_resolver(resolve, owns=lambda name: name.startswith(TEXT_PREFIX),
                        what=f"{TEXT_PREFIX}PATH names a folder of text tasks")
