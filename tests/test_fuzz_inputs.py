"""Property tests of the front door: study files and flag sets with wrong types, out-of-range and
non-finite values, unknown keys and odd encodings are each refused by `retain run` with exit
code 2, exactly one stderr line starting ``retain: error:``, and nothing written (no store, no
output folder). Also: a store query over any number of run keys, and `data check`'s exit code."""

from __future__ import annotations

import gzip
import hashlib
import math
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retain.cli.main import main

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# ---- values of the wrong kind for each kind of field ----------------------------------------
NON_FINITE = st.sampled_from([math.inf, -math.inf, math.nan])
NOT_INT = st.one_of(st.booleans(), st.text(max_size=5), st.floats(allow_nan=False, allow_infinity=False)
                    .filter(lambda f: not f.is_integer()), NON_FINITE)
NOT_FLOAT = st.one_of(st.booleans(), st.text(max_size=5), NON_FINITE)
NOT_BOOL = st.one_of(st.integers(-3, 3), st.text(max_size=5), st.floats(allow_nan=False))
HUGE = st.integers(2**32, 2**70)


def _toml(value) -> str:
    """A TOML literal for ``value`` (TOML has inf and nan; strings are basic strings, escaped)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    escaped = "".join(c if c.isascii() and (c.isalnum() or c in " .-_") else
                      f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}" for c in value)
    return f'"{escaped}"'


# (table, key, bad values): each a place in a study file that takes one kind of value
STUDY_SLOTS = [
    ("strategies.er", "buffer_size", NOT_INT),
    ("strategies.er", "replay_batch_size", st.one_of(NOT_INT, st.integers(-5, 0))),
    ("strategies.ewc", "ewc_lambda", st.one_of(NOT_FLOAT, st.floats(max_value=-0.001, allow_nan=False))),
    ("strategies.ewc", "online", NOT_BOOL),
    ("benchmarks.synthetic", "epochs", st.one_of(NOT_INT, st.integers(-5, 0))),
    ("benchmarks.synthetic", "lr", st.one_of(NOT_FLOAT, st.floats(max_value=0.0, allow_nan=False))),
    ("benchmarks.synthetic", "tasks", st.one_of(NOT_INT, st.integers(10_001, 2**40), st.integers(-5, 0))),
    ("benchmarks.synthetic", "blur", st.one_of(NOT_FLOAT, st.floats(1.0, 1e9))),
    ("study", "seeds", st.one_of(st.booleans(), st.text(max_size=3), st.integers(-5, 0),
                                 st.integers(100_001, 2**40), st.lists(HUGE, min_size=1, max_size=2))),
]


def _study_text(table: str, key: str, literal: str) -> str:
    tables = {"study": ["seeds = 1"], "benchmarks.synthetic": ["epochs = 1"],
              "strategies.er": ["buffer_size = 8"], "strategies.ewc": []}
    tables[table] = [line for line in tables[table] if not line.startswith(key)] + [f"{key} = {literal}"]
    return "\n".join(f"[{name}]\n" + "\n".join(lines) + "\n" for name, lines in tables.items())


def _refused(argv: list[str], out: Path, capsys) -> str:
    """Run `retain run`; assert exit 2, one `retain: error:` line and nothing written; the line."""
    try:
        rc = main(["run", *argv, "--out", str(out / "out"), "--quiet", "--workers", "1"])
    except SystemExit as exc:  # argparse's own refusals
        rc = exc.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("retain: error: "), err
    written = sorted(p.name for p in out.iterdir() if p.name != "study.toml")
    assert written == [], written  # no store, no output folder
    return lines[0]


@FUZZ
@given(st.sampled_from(STUDY_SLOTS).flatmap(lambda s: st.tuples(st.just(s[0]), st.just(s[1]), s[2])))
def test_a_study_file_with_a_bad_value_is_refused_naming_file_line_and_key(capsys, slot):
    table, key, value = slot
    text = _study_text(table, key, _toml(value))
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "study.toml").write_text(text)
        line = _refused([str(Path(d) / "study.toml")], Path(d), capsys)
    number = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith(f"{key} = "))
    assert f"study.toml:{number}: " in line, (text, line)
    assert key in line


@FUZZ
@given(table=st.sampled_from(["study", "settings", "benchmarks.synthetic", "strategies.er", "nonsense"]),
       key=st.from_regex(r"[a-z][a-z_]{0,12}", fullmatch=True).filter(
           lambda k: k not in {"seeds", "orders", "name", "description", "out", "store", "options", "settings"}
           and k not in _KNOWN),
       value=st.one_of(st.integers(0, 9), st.booleans(), st.text(max_size=4)))
def test_an_unknown_key_is_refused(capsys, table, key, value):
    text = _study_text(table, key, _toml(value)) if table in ("study", "benchmarks.synthetic", "strategies.er") \
        else _study_text("study", "seeds", "1") + f"\n[{table}]\n{key} = {_toml(value)}\n"
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "study.toml").write_text(text)
        line = _refused([str(Path(d) / "study.toml")], Path(d), capsys)
    assert "unknown" in line or "nonsense" in line


def _known_keys() -> set[str]:
    import dataclasses

    from retain.config.run import RunConfig
    from retain.strategies import STRATEGIES

    names = {f.name for f in dataclasses.fields(RunConfig)}
    return names | {f.name for _n, cls in STRATEGIES.items() for f, _ in cls.Config.fields()}


_KNOWN = _known_keys()


@FUZZ
@given(junk=st.binary(min_size=1, max_size=40).filter(lambda b: _not_utf8(b)), at=st.integers(0, 30))
def test_a_study_file_that_is_not_utf8_is_refused(capsys, junk, at):
    blob = _study_text("study", "seeds", "1").encode()
    blob = blob[:at] + junk + blob[at:]
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "study.toml").write_bytes(blob)
        line = _refused([str(Path(d) / "study.toml")], Path(d), capsys)
    assert "not a UTF-8 text file" in line


def _not_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


SYNTH = ["--benchmark", "synthetic", "--seeds", "1", "--strategy", "naive", "--epochs", "1"]
FLAG_SLOTS = [
    (["--tasks"], st.one_of(st.integers(10_001, 2**62), st.integers(-9, 0)).map(str)),
    (["--epochs"], st.one_of(st.integers(-9, 0).map(str), st.sampled_from(["1.5", "x", "", "nan"]))),
    (["--lr"], st.one_of(st.sampled_from(["nan", "inf", "-inf", "0", "-1", "x", "1e999"]))),
    (["--seeds"], st.one_of(st.integers(100_001, 2**40), st.integers(-9, 0)).map(str)),
    (["--blur"], st.sampled_from(["1", "1.5", "-0.1", "nan", "inf", "x"])),
    (["--plasticity"], st.sampled_from(["redo_tau=abc", "redo_tau=inf", "sp_noise=nan", "sp_noise=inf",
                                        "redo_every=1.5", "redo=2", "nonsense=1", "redo_tau", "wsc_keep=-1"])),
    (["--benchmark-option"], st.sampled_from(["dim=abc", "dim=1.5", "dim=true", "nope=1", "per_class=x"])),
    (["--backbone-option"], st.sampled_from(["hidden=abc", "hidden=8", "nope=1", "hidden=true"])),
    (["--strategy", "er", "--buffer-size"], st.sampled_from(["0", "-3", "1.5", "true", "x", "99999999"])),
    (["--strategy", "ewc", "--hp"], st.sampled_from(["ewc.ewc_lambda=abc", "ewc.ewc_lambda=inf", "ewc.online=2",
                                                     "ewc.online=maybe", "ewc.nope=1", "ewc_lambda=1"])),
]


@FUZZ
@given(st.sampled_from(FLAG_SLOTS).flatmap(lambda s: st.tuples(st.just(s[0]), s[1])))
def test_a_bad_flag_value_is_refused(capsys, slot):
    flags, value = slot
    with tempfile.TemporaryDirectory() as d:
        _refused([*SYNTH, *flags, value], Path(d), capsys)


# ---- the store answers for any number of run keys (SQLite binds at most ~32k variables) ---
def test_store_runs_takes_more_keys_than_sqlite_binds(tmp_path):
    from retain.store import _CHUNK, Store

    store = Store(tmp_path / "retain.db")
    for i in range(3):
        store.save_run({"run_key": f"k{i}", "study": "", "benchmark": "b", "strategy": "s", "seed": i,
                        "task_order": [0], "config": {}, "versions": {}, "revision": "", "started_at": 0.0,
                        "status": "finished", "acc_matrix": [[0.5]]})
    keys = [f"k{i}" for i in range(3)] + [f"absent{i}" for i in range(40_000)]
    assert len(keys) > 32_766 > _CHUNK  # past SQLite's default limit, so chunks are needed
    runs = store.runs(run_key=keys)
    assert [r["run_key"] for r in runs] == ["k0", "k1", "k2"]
    assert [r["run_key"] for r in store.runs(run_key=keys[::-1])] == ["k0", "k1", "k2"]  # oldest first
    store.close()


# ---- data check: non-zero for incomplete, corrupt, or a named dataset that is missing --------
def _idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape) + \
        array.astype(np.uint8).tobytes()


def _mnist_dir(root: Path, *, skip: str = "", swap: bool = False) -> Path:
    d = root / "mnist"
    d.mkdir(parents=True)
    for split in ("train", "t10k"):
        files = {f"{split}-images-idx3-ubyte": _idx(np.zeros((4, 28, 28))),
                 f"{split}-labels-idx1-ubyte": _idx(np.arange(4))}
        if swap and split == "train":
            a, b = files.values()
            files = dict(zip(files, (b, a)))
        for stem, blob in files.items():
            if stem != skip:
                (d / f"{stem}.gz").write_bytes(gzip.compress(blob))
    return root


def test_data_check_fails_for_an_incomplete_dataset(tmp_path, capsys, monkeypatch):
    from retain.data import idx

    root = _mnist_dir(tmp_path, skip="t10k-labels-idx1-ubyte")
    for stem in idx.MNIST_MD5:  # the generated files stand in for the official ones
        path = root / "mnist" / f"{stem}.gz"
        if path.exists():
            monkeypatch.setitem(idx.MNIST_MD5, stem, hashlib.md5(gzip.decompress(path.read_bytes())).hexdigest())
    assert main(["data", "check", "mnist", "--data-dir", str(root)]) == 1
    assert "incomplete" in capsys.readouterr().out
    assert main(["data", "check", "cifar10", "--data-dir", str(root)]) == 1  # asked for by name, absent


def test_data_check_names_swapped_files(tmp_path, capsys):
    root = _mnist_dir(tmp_path, swap=True)
    assert main(["data", "check", "mnist", "--data-dir", str(root)]) == 1
    out = capsys.readouterr().out
    assert "swapped" in out and "checksum" not in out.split("swapped")[0]



def test_data_check_says_a_file_is_truncated(tmp_path, capsys):
    root = _mnist_dir(tmp_path)
    path = root / "mnist" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:40])
    assert main(["data", "check", "mnist", "--data-dir", str(root)]) == 1
    assert "train-images-idx3-ubyte: cannot read" in capsys.readouterr().out  # not only "checksum mismatch"
