"""What retain does to a file given as its store: a file that is not a retain store (or is one of
a newer schema) is refused with one line and exit 2 by `retain run` and `retain report` alike,
and is byte-for-byte unchanged with nothing created beside it. `retain report` reads a store
without changing it or its folder, also where the folder is read-only."""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import os
import re
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from processes import env, retain
from retain.cli.main import main
from retain.errors import StoreError
from retain.store import SCHEMA_VERSION, Store

RUN = ["run", "--benchmark", "synthetic", "--strategy", "naive", "--seeds", "1", "--tasks", "2", "--epochs", "1",
       "--hidden", "8", "--quiet", "--no-report", "--warnings", "none"]


def _sqlite(path: Path, *statements: str, wal: bool = False) -> None:
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    for s in statements:
        conn.execute(s)
    conn.commit()
    conn.close()


def _newer(path: Path) -> None:
    Store(path).close()
    _sqlite(path, "UPDATE meta SET value = '99' WHERE key = 'schema_version'")


#: name -> (makes the file, regex its one line must match)
FOREIGN: dict[str, tuple[Callable[[Path], None], str]] = {
    "unrelated-table": (lambda p: _sqlite(p, "CREATE TABLE notes (x)", "INSERT INTO notes VALUES (1)"),
                        r"not a retain results store \(tables: notes\)"),
    "unrelated-table-wal": (lambda p: _sqlite(p, "CREATE TABLE notes (x)", wal=True),
                            r"not a retain results store \(tables: notes\)"),
    "runs-table": (lambda p: _sqlite(p, "CREATE TABLE runs (id, name)"), r"\(tables: runs\)"),
    "meta-table": (lambda p: _sqlite(p, "CREATE TABLE meta (key, value)", "INSERT INTO meta VALUES ('a', 'b')"),
                   r"meta table has no schema_version"),
    "meta-other-columns": (lambda p: _sqlite(p, "CREATE TABLE meta (a, b)"), r"meta table is not retain's"),
    "version-not-integer": (lambda p: _sqlite(p, "CREATE TABLE meta (key, value)",
                                              "INSERT INTO meta VALUES ('schema_version', 'abc')"),
                            r"meta\.schema_version is 'abc', not a version number"),
    "retain-meta-foreign-tables": (lambda p: _sqlite(p, "CREATE TABLE meta (key, value)", "CREATE TABLE notes (x)",
                                                     "INSERT INTO meta VALUES ('schema_version', '1')"),
                                   r"\(tables: meta, notes\)"),
    "newer-schema": (_newer, r"store schema version 99 is newer than this retain understands \(1\)"),
    "text-file": (lambda p: p.write_text("run,acc\nnaive,0.5\n"), r"not a SQLite database"),
    "sqlite-header-then-junk": (lambda p: p.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 64),
                                r"cannot read the results store|not a retain results store"),
}


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("retain: error: "), err
    return lines[0]


@pytest.mark.parametrize("command", ["run", "report"])
@pytest.mark.parametrize("name", list(FOREIGN))
def test_a_file_that_is_not_a_retain_store_is_refused_untouched(name, command, tmp_path, capsys):
    make, needle = FOREIGN[name]
    path = tmp_path / "their.db"
    make(path)
    before = _snapshot(tmp_path)
    argv = [*RUN, "--store", str(path), "--out", str(tmp_path)] if command == "run" else \
        ["report", str(path), "--out", str(tmp_path)]
    assert main(argv) == 2
    assert re.search(needle, _one_line(capsys.readouterr().err))
    assert _snapshot(tmp_path) == before  # same bytes, no -wal, -shm or .lock beside it


@pytest.mark.parametrize("command", ["run", "report"])
def test_a_directory_as_the_store_is_refused(command, tmp_path, capsys):
    argv = [*RUN, "--store", str(tmp_path), "--out", str(tmp_path)] if command == "run" else ["report", str(tmp_path)]
    assert main(argv) == 2
    assert "is a directory" in _one_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_a_zero_byte_file_is_a_new_store_for_run_and_no_store_for_report(tmp_path, capsys):
    path = tmp_path / "empty.db"
    path.touch()
    assert main(["report", str(path), "--out", str(tmp_path / "r")]) == 2
    assert "an empty database, no results in it" in _one_line(capsys.readouterr().err)
    assert path.read_bytes() == b"" and sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]
    assert main([*RUN, "--store", str(path), "--out", str(tmp_path)]) == 0
    with Store(path, readonly=True) as store:
        assert len(store.runs()) == 1


def test_a_missing_store_is_refused_by_report_and_nothing_is_created(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope" / "retain.db")]) == 2
    assert "no results store there" in _one_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_an_sqlite_file_without_tables_is_a_new_store(tmp_path):
    """What a kill while creating a store leaves (the schema is written in one transaction)."""
    path = tmp_path / "r.db"
    _sqlite(path, "PRAGMA user_version = 0", wal=True)
    with Store(path) as store:
        assert store.conn.execute("SELECT value FROM meta").fetchone() == (str(SCHEMA_VERSION),)


@functools.cache
def _real_record() -> dict:
    from retain.config.run import RunConfig
    from retain.execution.execute import execute

    return execute(RunConfig(benchmark="synthetic", tasks=2, epochs=1, hidden=(8,)).validate(), study="")


def _record(key: str) -> dict:
    """A real run's record (so a report can be drawn from it) under the run key ``key``."""
    return dataclasses.replace(copy.deepcopy(_real_record()), run_key=key)


def test_report_leaves_the_store_and_its_folder_as_they_were(tmp_path, capsys):
    path = tmp_path / "s" / "retain.db"
    with Store(path) as store:
        store.save_run(_record("k"))
    before = _snapshot(path.parent)
    assert main(["report", str(path), "--out", str(tmp_path / "report")]) == 0
    assert _snapshot(path.parent) == before  # no -wal, no -shm, not a byte changed
    assert (tmp_path / "report" / "report.md").is_file()


def test_a_reader_sees_what_a_live_writer_committed_and_cannot_write(tmp_path):
    path = tmp_path / "retain.db"
    writer = Store(path)
    writer.save_run(_record("a"))
    assert Path(f"{path}-wal").exists()  # a writer at work: the reader must read through its WAL
    with Store(path, readonly=True) as reader:
        assert [r["run_key"] for r in reader.runs()] == ["a"]
        writer.save_run(_record("b"))
        assert [r["run_key"] for r in reader.runs()] == ["a", "b"]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.save_run(_record("c"))
    writer.close()


def test_opening_for_writing_refuses_before_creating_any_folder(tmp_path):
    (tmp_path / "their.db").write_text("not sqlite")
    with pytest.raises(StoreError, match="not a SQLite database"):
        Store(tmp_path / "their.db")
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot create the store's folder"):
        Store(tmp_path / "file" / "retain.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "their.db"]


def _read_only(folder: Path, command: list[str]) -> subprocess.CompletedProcess:
    """Run ``command`` with ``folder`` read-only: chmod where that binds (not root), else a
    read-only bind mount in a private mount namespace (root, as in CI containers)."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            return subprocess.run(command, env=env(), capture_output=True, text=True, timeout=120)
        finally:
            folder.chmod(0o755)
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    probe = subprocess.run(["unshare", "--mount", "sh", "-c", script, "sh", str(folder), "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a read-only folder here as root (no mount namespace): {probe.stderr.strip()}")
    return subprocess.run(["unshare", "--mount", "sh", "-c", script, "sh", str(folder), *command], env=env(),
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_report_works_on_a_store_in_a_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    with Store(folder / "retain.db") as store:
        store.save_run(_record("k"))
    before = _snapshot(folder)
    done = _read_only(folder, retain("report", str(folder / "retain.db"), "--out", str(tmp_path / "report")))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "report" / "report.md").is_file()
    # Without --out the report would go to the read-only folder: one line, exit 2.
    done = _read_only(folder, retain("report", str(folder / "retain.db")))
    assert done.returncode == 2 and "cannot write the report there" in _one_line(done.stderr), done.stderr
    assert _snapshot(folder) == before


def _flip(path: Path, needle: bytes) -> None:
    """Damage the file on disk: flip the bytes of the first place ``needle`` is stored."""
    _sqlite(path, "PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the main file
    data = bytearray(path.read_bytes())
    at = data.find(needle)
    assert at > 0
    for k in range(at, at + len(needle)):
        data[k] ^= 0xA5
    path.write_bytes(bytes(data))


#: name -> (how the store is damaged, what its one line says)
DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "bad-json": (lambda p: _sqlite(p, "UPDATE runs SET metrics = '{bad'"), r"metrics is not valid JSON"),
    "text-in-a-cell": (lambda p: _sqlite(p, "UPDATE accuracy SET value = 'abc' WHERE row = 0 AND col = 0"),
                       r"accuracy cell \(0, 0\) is 'abc', not an accuracy in \[0, 1\]"),
    "missing-row": (lambda p: _sqlite(p, "DELETE FROM accuracy WHERE row = 1"),
                    r"its accuracy matrix has 2 of the 4 cells of 2 tasks"),
    "inf": (lambda p: _sqlite(p, "UPDATE accuracy SET value = 9e999 WHERE row = 1 AND col = 1"),
            r"accuracy cell \(1, 1\) is inf"),
    "negative": (lambda p: _sqlite(p, "UPDATE accuracy SET value = -0.5 WHERE row = 1 AND col = 0"),
                 r"accuracy cell \(1, 0\) is -0.5"),
    "flipped-bytes": (lambda p: _flip(p, b"synthetic"), r"cannot read the stored runs \(Could not decode to UTF-8"),
}


@pytest.mark.parametrize("name", list(DAMAGE))
def test_report_on_a_damaged_store_is_one_line_naming_the_store_and_the_run(name, tmp_path, capsys):
    path = tmp_path / "retain.db"
    assert main([*RUN, "--out", str(tmp_path)]) == 0
    damage, message = DAMAGE[name]
    damage(path)
    capsys.readouterr()
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["report", str(path), "--out", str(tmp_path / "report")])
    assert not caught, [str(w.message) for w in caught]  # no screens of numpy warnings
    line = _one_line(capsys.readouterr().err)
    assert code == 2 and re.search(message, line), line
    assert line.startswith(f"retain: error: {path}: ")
    if name != "flipped-bytes":
        assert f"{path}: run 1 (naive seed 0) is damaged: " in line
    assert not (tmp_path / "report" / "report.md").exists()
