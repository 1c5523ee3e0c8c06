"""What a stored run must look like to be read: its JSON columns parse to the right kinds; a
finished run's accuracy matrix is whole (one cell per task and evaluated task) and holds
accuracies, finite numbers in [0, 1], as does its baseline; its metrics are numbers. A store
edited by hand, or damaged on disk, is refused when read, in one line naming the store and the
run, rather than failing deep inside a report (a traceback, or screens of numpy warnings for an
inf)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from retain.errors import StoreError

#: JSON columns of ``runs`` and the kind each must decode to (None is allowed where noted).
JSON_COLUMNS = {"task_order": list, "config": dict, "versions": dict, "baseline": list, "metrics": dict,
                "extra": dict}
_MAY_BE_NULL = {"baseline", "metrics", "extra"}


def _accuracy(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and 0.0 <= value <= 1.0)


class Damaged:
    """Builds the refusal for one run of the store at ``path``."""

    def __init__(self, path: Path, row: dict[str, Any]):
        self.path, self.row = path, row

    def error(self, what: str) -> StoreError:
        r = self.row
        return StoreError(f"{self.path}: run {r.get('id')} ({r.get('strategy')} seed {r.get('seed')}) is damaged: "
                          f"{what}; restore the store from a copy, or delete that run from it")


def decode_columns(path: Path, row: dict[str, Any]) -> None:
    """Decode the JSON columns of ``row`` in place; refuse text that is not JSON or not the kind."""
    for column, kind in JSON_COLUMNS.items():
        text = row.get(column)
        if text is None:
            if column in _MAY_BE_NULL:
                continue
            raise Damaged(path, row).error(f"{column} is empty")
        try:
            value = json.loads(text)
        except (TypeError, ValueError):
            raise Damaged(path, row).error(f"{column} is not valid JSON ({str(text)[:40]!r})") from None
        if not isinstance(value, kind):
            raise Damaged(path, row).error(f"{column} is a {type(value).__name__}, not a {kind.__name__}")
        row[column] = value


def check_finished(path: Path, row: dict[str, Any], cells: list[tuple[Any, Any, Any]]) -> list[list[float]]:
    """The accuracy matrix of a finished run from its ``(row, col, value)`` cells, refused unless
    it is whole and every value (and every baseline value, and metric) is a finite number."""
    damaged = Damaged(path, row)
    tasks = len(row["task_order"])
    if not cells:
        raise damaged.error("a finished run without accuracies")
    matrix = [[math.nan] * tasks for _ in range(tasks)]
    for i, j, v in cells:
        if not (isinstance(i, int) and isinstance(j, int) and 0 <= i < tasks and 0 <= j < tasks):
            raise damaged.error(f"accuracy cell ({i}, {j}) lies outside the {tasks} x {tasks} matrix of its tasks")
        if not _accuracy(v):
            raise damaged.error(f"accuracy cell ({i}, {j}) is {v!r}, not an accuracy in [0, 1]")
        matrix[i][j] = float(v)
    if len(cells) != tasks * tasks:  # (run, row, col) is the table's key: no cell is there twice
        raise damaged.error(f"its accuracy matrix has {len(cells)} of the {tasks * tasks} cells of {tasks} tasks")
    baseline = row.get("baseline")
    if baseline is not None and (len(baseline) != tasks or not all(_accuracy(v) for v in baseline)):
        raise damaged.error(f"its baseline is not {tasks} accuracies in [0, 1]")
    for name, value in (row.get("metrics") or {}).items():  # NaN may be honest (a metric of one task)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise damaged.error(f"metric {name} is {value!r}, not a number")
    return matrix
