"""The results store: one SQLite file. A run is written in one transaction when it finishes, so
a failed or killed run never leaves rows marked finished.

Opening is one path for every command: :func:`retain.store.files.inspect` says what the file is
without changing it (foreign files and newer schemas are refused untouched), then a reader gets
a read-only connection and a writer takes the store's writer lock (:mod:`retain.store.lock`: one
writing process at a time, a second one waits its turn) before its read-write connection."""

from __future__ import annotations

import json
import sqlite3
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from retain.errors import StoreError
from retain.store import lock
from retain.store.checks import check_finished, decode_columns
from retain.store.files import NEW, connect_readonly, inspect
from retain.store.record import RunRecord

SCHEMA_VERSION = 1
#: Most values one IN (...) binds; SQLite before 3.32 allows 999 variables a statement.
_CHUNK = 900

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_key TEXT NOT NULL,
    study TEXT NOT NULL DEFAULT '',
    benchmark TEXT NOT NULL,
    strategy TEXT NOT NULL,
    seed INTEGER NOT NULL,
    task_order TEXT NOT NULL,
    config TEXT NOT NULL,
    versions TEXT NOT NULL,
    revision TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('finished', 'failed')),
    error TEXT,
    started_at REAL NOT NULL,
    finished_at REAL,
    wall_seconds REAL,
    peak_mem_mb REAL,
    trainable_params INTEGER,
    baseline TEXT,
    metrics TEXT,
    extra TEXT
);
CREATE UNIQUE INDEX runs_finished_key ON runs(run_key) WHERE status = 'finished';
CREATE TABLE accuracy (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    row INTEGER NOT NULL, col INTEGER NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (run_id, row, col)
);
CREATE TABLE task_times (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    task INTEGER NOT NULL, train_seconds REAL NOT NULL, eval_seconds REAL NOT NULL, loss REAL,
    PRIMARY KEY (run_id, task)
);
CREATE TABLE probes (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    task INTEGER NOT NULL, name TEXT NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (run_id, task, name)
);
CREATE TABLE events (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    task INTEGER, kind TEXT NOT NULL, value REAL, threshold REAL, message TEXT NOT NULL
);
"""


class Store:
    """The SQLite store at ``path``: ``Store(path)`` to write (a missing or zero-byte path becomes a
    new store), ``Store(path, readonly=True)`` to read (an existing store only; nothing beside it
    is created where that can be avoided, so a store in a read-only folder can be read).

    Either way a file that is not a retain store, or one of a newer schema, is refused with a
    StoreError before a byte of it changes."""

    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path, self.readonly = Path(path), readonly
        kind = inspect(self.path, SCHEMA_VERSION)  # refuse a foreign file before touching anything
        if readonly:
            if kind == NEW:
                what = "an empty database, no results in it" if self.path.exists() else "no results store there"
                raise StoreError(f"{self.path}: {what} (run `retain run` first, or give the store's path)")
            self.conn = connect_readonly(self.path)
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create the store's folder ({exc.strerror})") from None
        key = lock.acquire(self.path)
        self._unlock = weakref.finalize(self, lock.release, key)
        try:
            kind = inspect(self.path, SCHEMA_VERSION)  # again: another writer may have made it meanwhile
            self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            if kind == NEW:
                # One transaction: a kill leaves either no table (still "new") or the whole schema.
                self.conn.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} INSERT INTO meta VALUES "
                                        f"('schema_version', '{SCHEMA_VERSION}'); COMMIT;")
        except BaseException as exc:
            self._unlock()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"{self.path}: cannot open the results store ({exc})") from None
            raise

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        """Close the connection and, for a writer, give back the writer lock."""
        self.conn.close()
        if not self.readonly:
            self._unlock()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- writing ------------------------------------------------------------------------------
    def finished_keys(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT run_key FROM runs WHERE status = 'finished'")}

    def save_run(self, record: RunRecord | dict[str, Any]) -> int:
        """Write one run (finished or failed) and all its rows in a single transaction.

        A finished run whose key is already finished in the store (another writer recorded it
        meanwhile) is not written again: its id is returned."""
        record = RunRecord.from_mapping(record)
        cols = ("run_key", "study", "benchmark", "strategy", "seed", "task_order", "config", "versions",
                "revision", "status", "error", "started_at", "finished_at", "wall_seconds", "peak_mem_mb",
                "trainable_params", "baseline", "metrics", "extra")
        values = [record.get(c) for c in cols]
        for i, c in enumerate(cols):
            if c in ("task_order", "config", "versions", "baseline", "metrics", "extra") and values[i] is not None:
                values[i] = json.dumps(values[i], sort_keys=True)
        with self.transaction() as c:
            if record.get("status") == "finished":
                row = c.execute("SELECT id FROM runs WHERE run_key = ? AND status = 'finished'",
                                (record.get("run_key"),)).fetchone()
                if row is not None:
                    return int(row[0])
            cur = c.execute(f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                            values)
            run_id = int(cur.lastrowid)
            R = record.get("acc_matrix") or []
            c.executemany("INSERT INTO accuracy VALUES (?, ?, ?, ?)",
                          [(run_id, i, j, float(v)) for i, row in enumerate(R) for j, v in enumerate(row)])
            times = zip(record.get("task_seconds") or [], record.get("eval_seconds") or [],
                        record.get("losses") or [])
            c.executemany("INSERT INTO task_times VALUES (?, ?, ?, ?, ?)",
                          [(run_id, t, a, b, loss) for t, (a, b, loss) in enumerate(times)])
            c.executemany("INSERT INTO probes VALUES (?, ?, ?, ?)",
                          [(run_id, p["task"], name, float(v)) for p in record.get("probes") or []
                           for name, v in p.items() if name != "task"])
            c.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
                          [(run_id, e.get("task"), e["kind"], e.get("value"), e.get("threshold"),
                            e["message"]) for e in record.get("events") or []])
        return run_id

    # ---- reading ------------------------------------------------------------------------------
    def runs(self, *, status: str | None = "finished", **where: Any) -> list[RunRecord]:
        """Runs as records (JSON columns decoded, accuracy matrix attached), oldest first."""
        for col, val in where.items():  # SQLite binds at most a few thousand variables: long lists in chunks
            if isinstance(val, (list, tuple, set)) and len(val) > _CHUNK:
                vals = list(val)
                out = [r for i in range(0, len(vals), _CHUNK)
                       for r in self.runs(status=status, **{**where, col: vals[i: i + _CHUNK]})]
                return sorted(out, key=lambda r: r.id)
        clauses, args = [], []
        if status:
            clauses.append("status = ?")
            args.append(status)
        for col, val in where.items():
            if val is None:
                continue
            vals = val if isinstance(val, (list, tuple, set)) else [val]
            clauses.append(f"{col} IN ({', '.join('?' * len(vals))})")
            args.extend(vals)
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(clauses) if clauses else "") + " ORDER BY id"
        with self._reading("runs"):
            return self._read_runs(sql, args)

    @contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        """Pages damaged on disk ("database disk image is malformed", text that is not UTF-8) are
        one line naming the store, not an sqlite3 traceback."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            reason = str(exc).split(" with text ")[0]  # not the undecodable bytes themselves
            raise StoreError(f"{self.path}: cannot read the stored {what} ({reason}); the file is damaged: restore "
                             f"it from a copy (`sqlite3 {self.path} .recover` may save what is left)") from None

    def _read_runs(self, sql: str, args: list[Any]) -> list[RunRecord]:
        """Each row checked as it is read (retain.store.checks): a damaged run is one line naming it."""
        cur = self.conn.execute(sql, args)
        names = [d[0] for d in cur.description]
        out = []
        for row in cur.fetchall():
            r = dict(zip(names, row))
            decode_columns(self.path, r)
            cells = self.conn.execute("SELECT row, col, value FROM accuracy WHERE run_id = ? ORDER BY row, col",
                                      (r["id"],)).fetchall()
            r["acc_matrix"] = check_finished(self.path, r, cells) if r["status"] == "finished" else _matrix(cells)
            times = self.conn.execute("SELECT train_seconds, eval_seconds, loss FROM task_times WHERE run_id = ? "
                                      "ORDER BY task", (r["id"],)).fetchall()
            r["task_seconds"], r["eval_seconds"], r["losses"] = ([list(c) for c in zip(*times)] if times
                                                                 else ([], [], []))
            out.append(RunRecord.from_mapping(r))
        return out

    def acc_matrix(self, run_id: int) -> list[list[float]]:
        return _matrix(self.conn.execute("SELECT row, col, value FROM accuracy WHERE run_id = ? ORDER BY row, col",
                                         (run_id,)).fetchall())

    def events(self, run_id: int) -> list[dict[str, Any]]:
        with self._reading("events"):
            cur = self.conn.execute("SELECT task, kind, value, threshold, message FROM events WHERE run_id = ?",
                                    (run_id,))
            return [dict(zip(("task", "kind", "value", "threshold", "message"), r)) for r in cur.fetchall()]

    def probes(self, run_id: int) -> dict[str, list[tuple[int, float]]]:
        out: dict[str, list[tuple[int, float]]] = {}
        with self._reading("probes"):
            for task, name, value in self.conn.execute(
                    "SELECT task, name, value FROM probes WHERE run_id = ? ORDER BY task", (run_id,)):
                out.setdefault(name, []).append((task, value))
        return out


def _matrix(cells: list[tuple[int, int, float]]) -> list[list[float]]:
    """The square matrix of ``(row, col, value)`` cells, unchecked (a failed run's, if any)."""
    if not cells:
        return []
    n = max(max(i, j) for i, j, _ in cells) + 1
    R = [[0.0] * n for _ in range(n)]
    for i, j, v in cells:
        R[i][j] = v
    return R


def now() -> float:
    return time.time()
