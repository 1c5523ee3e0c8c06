"""Text benchmarks from a user's own columns: :func:`text_from_arrays` (lists of texts and labels) and
:func:`text_from_hf` (a Hugging Face dataset's text and label columns). Both end in
:func:`retain.benchmarks.text.text_from_tasks`, so tokenisation, its cache, truncation counts and the
scenarios are those of ``text-cl``.

Tasks are cut from the labels as :func:`retain.benchmarks.custom.from_arrays` cuts images: ``tasks``
groups of labels in sorted order (sizes differ by at most one), or the groups of ``class_order``
(a list of label lists), or one task per id of ``domains=(train_ids, test_ids)`` (one label space,
domain-IL).

    from retain.benchmarks import text_from_arrays
    bench = text_from_arrays(train_texts, train_labels, test_texts, test_labels, tasks=2,
                             tokenizer="models/minilm-l6-v2")
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from retain.benchmarks.base import Benchmark
from retain.benchmarks.text import text_from_tasks
from retain.data.text import TextSplit, TextTask
from retain.errors import ConfigError


def _split(texts: Sequence[str], labels: Sequence[Any], rows: np.ndarray, names: list[str]) -> TextSplit:
    picked = [texts[i] for i in rows]
    ids = np.asarray([names.index(str(labels[i])) for i in rows], dtype=np.int64)
    h = hashlib.sha256()
    for t, y in zip(picked, ids.tolist()):
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\0%d\n" % y)
    return TextSplit(picked, ids, h.hexdigest())


def _check(what: str, texts: Sequence[Any], labels: Sequence[Any]) -> None:
    if len(texts) != len(labels):
        raise ConfigError(f"{what}: {len(texts)} texts but {len(labels)} labels; expected one label per text")
    if not texts:
        raise ConfigError(f"{what}: no texts")
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise ConfigError(f"{what}: text {bad} is a {type(texts[bad]).__name__}, not a string")


def text_from_arrays(train_texts: Sequence[str], train_labels: Sequence[Any], test_texts: Sequence[str],
                     test_labels: Sequence[Any], *, tokenizer: str, tasks: int | None = None,
                     class_order: Sequence[Sequence[Any]] | None = None,
                     domains: tuple[Sequence[Any], Sequence[Any]] | None = None, scenario: str | None = None,
                     max_length: int = 128, name: str = "text-arrays", cache: bool = True) -> Benchmark:
    """A text benchmark from lists of texts and labels (any values; see the module docstring)."""
    _check(f"{name} train", train_texts, train_labels)
    _check(f"{name} test", test_texts, test_labels)
    values = sorted({str(y) for y in train_labels})
    unseen = sorted({str(y) for y in test_labels} - set(values))
    if unseen:
        raise ConfigError(f"{name}: test labels {unseen[:5]} never occur in training")
    train_y, test_y = np.asarray([str(y) for y in train_labels]), np.asarray([str(y) for y in test_labels])
    out: list[TextTask] = []
    if domains is not None:
        if class_order is not None or tasks is not None:
            raise ConfigError(f"{name}: domains cuts the tasks itself; leave out tasks and class_order")
        train_d, test_d = np.asarray(domains[0]), np.asarray(domains[1])
        if len(train_d) != len(train_y) or len(test_d) != len(test_y):
            raise ConfigError(f"{name}: domains needs one id per text of each split")
        for d in sorted(set(train_d.tolist())):
            train = _split(train_texts, train_y, np.flatnonzero(train_d == d), values)
            out.append(TextTask(f"domain-{d}", values, train, _split(test_texts, test_y, np.flatnonzero(test_d == d),
                                                                     values)))
        return text_from_tasks(out, tokenizer=tokenizer, max_length=max_length, scenario=scenario or "domain-il",
                               name=name, cache=cache, info={"source": "arrays"})
    if class_order is not None:
        groups = [[str(c) for c in g] for g in class_order]
    else:
        k = tasks or 1
        if not isinstance(k, int) or not 1 <= k <= len(values):
            raise ConfigError(f"{name}: tasks must be an integer in 1..{len(values)} (the number of labels), got "
                              f"{tasks!r}")
        groups = [list(g) for g in np.array_split(np.asarray(values, dtype=object), k)]
    flat = [c for g in groups for c in g]
    if len(set(flat)) != len(flat) or set(flat) - set(values):
        raise ConfigError(f"{name}: class_order must name distinct training labels, got {groups}")
    for t, group in enumerate(groups):
        train = _split(train_texts, train_y, np.flatnonzero(np.isin(train_y, group)), group)
        out.append(TextTask(f"task-{t}", group, train,
                            _split(test_texts, test_y, np.flatnonzero(np.isin(test_y, group)), group)))
    return text_from_tasks(out, tokenizer=tokenizer, max_length=max_length, scenario=scenario, name=name, cache=cache,
                           info={"source": "arrays", "label_groups": groups})


def text_from_hf(dataset: Any, *, tokenizer: str, text_column: str = "text", label_column: str = "label",
                 train_split: str = "train", test_split: str = "test", name: str = "text-hf",
                 **kwargs: Any) -> Benchmark:
    """A text benchmark from a Hugging Face ``DatasetDict`` (or any mapping of splits to column tables):
    ``text_column`` and ``label_column`` of ``train_split`` and ``test_split``; the rest as :func:`text_from_arrays`."""
    try:
        train, test = dataset[train_split], dataset[test_split]
        columns = (train[text_column], train[label_column], test[text_column], test[label_column])
    except (KeyError, TypeError, IndexError) as exc:
        raise ConfigError(f"{name}: needs splits {train_split!r}, {test_split!r} with columns {text_column!r} and "
                          f"{label_column!r} ({type(exc).__name__}: {exc})") from None
    return text_from_arrays(*(list(c) for c in columns), tokenizer=tokenizer, name=name, **kwargs)
