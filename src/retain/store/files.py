"""What is at a store's path, found out without changing a byte of it.

Before retain writes a file as its store it must know the file is one: SQLite would happily add
retain's tables to someone else's database and switch it to WAL for good. So every open starts
here: the header is read as plain bytes, then the schema through a read-only connection
(``mode=ro``; ``immutable=1`` where that would otherwise leave ``-wal``/``-shm`` files beside the
file or fail in a read-only folder), and only a path judged ``new`` or a retain store of a
version this code reads goes on to a read-write open."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from urllib.parse import quote

from retain.errors import StoreError

SQLITE_HEADER = b"SQLite format 3\x00"
#: The tables of schema version 1 (SQLite's own ``sqlite_*`` tables aside).
RETAIN_TABLES = frozenset({"meta", "runs", "accuracy", "task_times", "probes", "events"})

NEW, STORE = "new", "store"


def _not_a_store(path: Path, why: str) -> StoreError:
    return StoreError(f"{path}: not a retain results store ({why}); left unchanged")


def _header(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(100)
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the results store ({exc.strerror})") from None


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A connection that cannot write ``path`` and, where it can avoid it, creates nothing beside it.

    A database in WAL mode (header byte 18 = 2) with no ``-wal`` file beside it has all its
    content in the file and no writer: it is opened ``immutable=1``, which creates no
    ``-wal``/``-shm`` files and works in a read-only folder. With a ``-wal`` file (a writer is at
    work, or one was killed) plain ``mode=ro`` reads what was committed there."""
    header = _header(path)
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    if len(header) > 18 and header[18] == 2 and not Path(f"{path}-wal").exists():
        uri += "&immutable=1"
    try:
        return sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open the results store read-only ({exc})") from None


def _tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows if not name.startswith("sqlite_")}


def _version(path: Path, conn: sqlite3.Connection, tables: set[str]) -> int:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.Error:
        raise _not_a_store(path, f"its meta table is not retain's; tables: {', '.join(sorted(tables))}") from None
    if row is None:
        raise _not_a_store(path, "its meta table has no schema_version")
    text = str(row[0])
    if not re.fullmatch(r"[1-9][0-9]{0,8}", text):
        raise _not_a_store(path, f"meta.schema_version is {text[:40]!r}, not a version number")
    return int(text)


def inspect(path: Path, schema_version: int) -> str:
    """``NEW`` for nothing at ``path``, a zero-byte file or an SQLite database without a table
    (what a kill while creating a store leaves); ``STORE`` for a retain store of schema
    ``schema_version`` or older. Anything else raises StoreError, and nothing is written."""
    if not path.exists():
        return NEW
    if not path.is_file():
        raise StoreError(f"{path}: is a directory or device, not a results store file")
    header = _header(path)
    if not header:
        return NEW
    if not header.startswith(SQLITE_HEADER):
        raise StoreError(f"{path}: not a SQLite database, so not a retain results store; left unchanged")
    conn = connect_readonly(path)
    try:
        tables = _tables(conn)
        if not tables:
            return NEW
        if "meta" not in tables:
            raise _not_a_store(path, f"tables: {', '.join(sorted(tables))}")
        version = _version(path, conn, tables)
        if version > schema_version:
            raise StoreError(f"{path}: store schema version {version} is newer than this retain understands "
                             f"({schema_version}); upgrade retain")
        if tables != RETAIN_TABLES:
            raise _not_a_store(path, f"tables: {', '.join(sorted(tables))}")
        return STORE
    except sqlite3.Error as exc:  # e.g. a corrupt page: say so, write nothing
        raise StoreError(f"{path}: cannot read the results store ({exc})") from None
    finally:
        conn.close()

