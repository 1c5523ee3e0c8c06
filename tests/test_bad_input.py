"""Bad input is refused at the edge: one table of cases, each run through `retain run`. Every case
must exit with code 2, print exactly one line that names the file / field / value and what was
expected, and leave no run marked finished.

The table in docs/bad-inputs.md is generated from CASES with each case's actual message:
    .venv/bin/python tests/test_bad_input.py > docs/bad-inputs.md
"""

from __future__ import annotations

import gzip
import os
import pickle
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from retain.cli.main import main

Setup = Callable[[Path], list[str]]  # makes the bad files under tmp, returns the `retain run` arguments
SYNTH = ["--benchmark", "synthetic", "--seeds", "1"]


@dataclass
class Case:
    name: str
    what: str  # the bad input, in words
    setup: Setup
    needle: str  # regex the one-line message must contain


# ---- builders of bad files -----------------------------------------------------------------
def _idx(array: np.ndarray, code: int = 0x08) -> bytes:
    head = bytes([0, 0, code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return head + array.astype(np.uint8).tobytes()


def _mnist(tmp: Path, *, n_images: int = 6, n_labels: int = 6, magic: bytes | None = None,
           truncate: bool = False) -> list[str]:
    """A small MNIST folder in the official layout (not the official content), with one defect."""
    d = tmp / "mnist"
    d.mkdir()
    rng = np.random.default_rng(0)
    for split in ("train", "t10k"):
        images = _idx(rng.integers(0, 256, (n_images if split == "train" else 4, 28, 28)))
        labels = _idx(np.arange(n_labels if split == "train" else 4) % 10)
        if magic is not None and split == "train":
            labels = magic + labels[4:]
        (d / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
        (d / f"{split}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    if truncate:
        f = d / "train-images-idx3-ubyte.gz"
        f.write_bytes(f.read_bytes()[:200])
    return ["--benchmark", "split-mnist", "--strategy", "naive", "--seeds", "1", "--data-dir", str(d)]


def _mnist_zero_dims(tmp: Path) -> list[str]:
    argv = _mnist(tmp)
    (tmp / "mnist" / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes([0, 0, 8, 0, 7])))
    return argv


def _mnist_swapped(tmp: Path) -> list[str]:
    argv = _mnist(tmp)
    d = tmp / "mnist"
    images, labels = d / "train-images-idx3-ubyte.gz", d / "train-labels-idx1-ubyte.gz"
    a, b = images.read_bytes(), labels.read_bytes()
    images.write_bytes(b)
    labels.write_bytes(a)
    return argv


def _cifar_study(tmp: Path, batch: bytes) -> list[str]:
    """A study on split-cifar10 (checksums off, as for re-packed files) whose data_batch_1 is ``batch``."""
    from vision_fixtures import write_cifar10

    folder = write_cifar10(tmp / "data")
    (folder / "data_batch_1").write_bytes(batch)
    study = tmp / "study.toml"
    study.write_text("[study]\nseeds = 1\n\n[benchmarks.split-cifar10]\noptions = { verify = false }\n\n"
                     "[strategies.naive]\n")
    return [str(study), "--data-dir", str(tmp / "data")]


def _cifar_wrong_shape(tmp: Path) -> list[str]:
    from vision_fixtures import py2_dumps

    rng = np.random.default_rng(0)
    return _cifar_study(tmp, py2_dumps({b"labels": [0] * 4, b"data": rng.integers(0, 256, (4, 1024), np.uint8)}))


class _Evil:
    """Unpickling this runs a shell command (touches a marker file): the stand-in for an attack."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _cifar_malicious(tmp: Path) -> list[str]:
    return _cifar_study(tmp, pickle.dumps({"data": _Evil(tmp / "PWNED")}, protocol=2))


def _checkpoint_malicious(tmp: Path) -> list[str]:
    import torch

    from retain.config.run import RunConfig
    from retain.training.checkpoint import path_for

    key = RunConfig(benchmark="synthetic", strategy="naive", seed=0).key()
    path = path_for(tmp / "ckpt", key)
    path.parent.mkdir()
    torch.save({"format": 1, "run_key": key, "strategy": _Evil(tmp / "PWNED")}, path)
    return [*SYNTH, "--strategy", "naive", "--checkpoint-dir", str(tmp / "ckpt")]


def _checkpoint_bad(kind: str) -> Setup:
    """A checkpoint of random bytes, or a directory where the checkpoint file should be."""

    def setup(tmp: Path) -> list[str]:
        from retain.config.run import RunConfig
        from retain.training.checkpoint import path_for

        path = path_for(tmp / "ckpt", RunConfig(benchmark="synthetic", strategy="naive", seed=0).key())
        path.parent.mkdir()
        if kind == "directory":
            path.mkdir()
        else:
            path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
        return [*SYNTH, "--strategy", "naive", "--checkpoint-dir", str(tmp / "ckpt")]

    return setup


def _study(text: str) -> Setup:
    def setup(tmp: Path) -> list[str]:
        (tmp / "study.toml").write_text(text)
        return [str(tmp / "study.toml")]
    return setup


def _study_bytes(blob: bytes) -> Setup:
    def setup(tmp: Path) -> list[str]:
        (tmp / "study.toml").write_bytes(blob)
        return [str(tmp / "study.toml")]
    return setup


def _store_not_sqlite(tmp: Path) -> list[str]:
    (tmp / "results.db").write_text("run,acc\nnaive,0.5\n")
    return [*SYNTH, "--strategy", "naive", "--store", str(tmp / "results.db")]


def _store_newer(tmp: Path) -> list[str]:
    from retain.store import Store

    Store(tmp / "newer.db").close()
    with sqlite3.connect(tmp / "newer.db") as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    return [*SYNTH, "--strategy", "naive", "--store", str(tmp / "newer.db")]


def _flags(*argv: str) -> Setup:
    return lambda tmp: list(argv)


_STUDY_OK = "[study]\nseeds = 1\n\n[benchmarks.synthetic]\n\n[strategies.naive]\n"

CASES = [
    Case("truncated-gzip", "MNIST .gz file cut short", lambda t: _mnist(t, truncate=True),
         r"train-images-idx3-ubyte\.gz: cannot read .*truncated or corrupt"),
    Case("idx-magic", "IDX file with a wrong magic number", lambda t: _mnist(t, magic=b"\x12\x34\x08\x01"),
         r"train-labels-idx1-ubyte\.gz: not an IDX file \(bad magic 12340801\)"),
    Case("idx-count", "6 training images but 5 labels", lambda t: _mnist(t, n_labels=5),
         r"train-images-idx3-ubyte\.gz has 6 images but train-labels-idx1-ubyte\.gz has 5 labels; expected"),
    Case("mnist-checksum", "well-formed MNIST files that are not the official ones", _mnist,
         r"train-images-idx3-ubyte\.gz: content checksum mismatch \(expected md5 [0-9a-f]{32}\)"),
    Case("data-dir-missing", "a data directory that does not exist",
         _flags("--benchmark", "split-mnist", "--seeds", "1", "--data-dir", "/nonexistent/mnist"),
         r"/nonexistent/mnist: data directory does not exist"),
    Case("cifar-shape", "CIFAR batch whose images are 1024 values, not 3072", _cifar_wrong_shape,
         r"data_batch_1: 'data' must be N x 3072 uint8, got \(4, 1024\)"),
    Case("cifar-malicious-pickle", "CIFAR batch whose pickle calls os.system", _cifar_malicious,
         r"data_batch_1: refuses to load global posix\.system"),
    Case("checkpoint-malicious-pickle", "checkpoint whose pickle calls os.system", _checkpoint_malicious,
         r"\.pt: checkpoint refused: it holds objects other than tensors"),
    Case("checkpoint-random-bytes", "checkpoint file of random bytes", _checkpoint_bad("bytes"),
         r"checkpoint (is corrupt or truncated|refused)"),
    Case("checkpoint-is-a-directory", "a directory where the checkpoint file should be",
         _checkpoint_bad("directory"), r"the checkpoint path is not a file"),
    Case("unknown-benchmark", "--benchmark nope", _flags("--benchmark", "nope"),
         r"unknown benchmark 'nope'; known: .*synthetic"),
    Case("unknown-strategy", "--strategy nope", _flags(*SYNTH, "--strategy", "nope"),
         r"unknown strategy 'nope'; known: .*naive"),
    Case("unknown-backbone", "--backbone nope", _flags(*SYNTH, "--backbone", "nope"),
         r"unknown backbone 'nope'; known: .*mlp"),
    Case("unknown-preset", "--preset nope", _flags("--preset", "nope"), r"unknown preset 'nope'; known: "),
    Case("zero-epochs", "--epochs 0", _flags(*SYNTH, "--epochs", "0"), r"epochs must be an integer >= 1, got 0"),
    Case("negative-batch", "--batch-size -4", _flags(*SYNTH, "--batch-size", "-4"),
         r"batch-size must be an integer >= 1, got -4"),
    Case("zero-tasks", "--tasks 0", _flags(*SYNTH, "--tasks", "0"),
         r"tasks must be a positive integer <= 10000, got 0"),
    Case("zero-seeds", "--seeds 0", _flags("--benchmark", "synthetic", "--seeds", "0"), r"seeds.* must be >= 1"),
    Case("zero-width", "--hidden 0,8", _flags(*SYNTH, "--strategy", "naive", "--hidden", "0,8"),
         r"hidden widths must be positive integers, got \(0, 8\)"),
    Case("negative-buffer", "--buffer-size -5", _flags(*SYNTH, "--strategy", "er", "--buffer-size", "-5"),
         r"er: buffer-size must be >= 1, got -5"),
    Case("buffer-too-big", "a replay buffer larger than all the training data",
         _flags(*SYNTH, "--strategy", "naive", "--strategy", "er", "--buffer-size", "100000"),
         r"er: buffer-size 100000 is larger than all the training data of synthetic \(256 samples"),
    Case("nan-lr", "--lr nan", _flags(*SYNTH, "--lr", "nan"), r"lr must be a finite number > 0, got nan"),
    Case("inf-lr", "--lr inf", _flags(*SYNTH, "--lr", "inf"), r"lr must be a finite number > 0, got inf"),
    Case("huge-lr", "--lr 1e300 (finite, but the first step overflows)", _flags(*SYNTH, "--lr", "1e300"),
         r"lr must be <= 1000 \(a step that size overflows the weights\), got 1e\+300"),
    Case("study-unknown-key", "study file with a misspelt setting (epoch = 3)",
         _study(_STUDY_OK.replace("[benchmarks.synthetic]\n", "[benchmarks.synthetic]\nepoch = 3\n")),
         r"study\.toml:5: benchmarks\.synthetic\.epoch: unknown setting \(did you mean epochs\?\); expected one of"),
    Case("study-wrong-type", "study file with lr = \"fast\"",
         _study(_STUDY_OK.replace("[strategies.naive]\n", "[strategies.naive]\nsettings = { lr = \"fast\" }\n")),
         r"study\.toml:7: strategies\.naive\.settings\.lr: must be float, got 'fast'"),
    Case("flag-for-no-selected-strategy", "--beta with naive and er (only DER++ has beta)",
         _flags(*SYNTH, "--strategy", "naive", "--strategy", "er", "--beta", "0.5"),
         r"--beta applies to none of the selected strategies \(naive, er\); it is a hyperparameter of .*derpp"),
    Case("hp-unknown-field", "--hp er.beta=0.5 (ER has no beta)",
         _flags(*SYNTH, "--strategy", "er", "--hp", "er.beta=0.5"), r"--hp er\.beta: er has no hyperparameter 'beta'"),
    Case("hp-strategy-not-selected", "--hp derpp.beta=0.5 without --strategy derpp",
         _flags(*SYNTH, "--strategy", "er", "--hp", "derpp.beta=0.5"), r"'derpp' is not among the selected"),
    Case("prefix-of-a-flag", "--seed 1 (a prefix of --seeds: no prefix matching)",
         _flags(*SYNTH, "--seed", "1"), r"unrecognized arguments: --seed"),
    Case("flag-given-twice", "--buffer-size 100 --buffer-size=200 (one value; argparse would keep the last)",
         _flags(*SYNTH, "--strategy", "er", "--buffer-size", "100", "--buffer-size=200"),
         r"--buffer-size was given 2 times; it takes one value"),
    Case("workers-zero", "--workers 0", _flags(*SYNTH, "--workers", "0"), r"--workers: expected 'auto' or an integer"),
    # ---- wrong types are refused, not coerced (study files name file:line and the type expected)
    Case("study-bool-for-int", "study file with buffer_size = true (a bool is not an integer)",
         _study(_STUDY_OK.replace("[strategies.naive]\n", "[strategies.er]\nbuffer_size = true\n")),
         r"study\.toml:7: strategies\.er\.buffer_size: must be an integer, got True"),
    Case("study-string-for-int", "study file with buffer_size = \"10\"",
         _study(_STUDY_OK.replace("[strategies.naive]\n", "[strategies.er]\nbuffer_size = \"10\"\n")),
         r"study\.toml:7: strategies\.er\.buffer_size: must be an integer, got '10'"),
    Case("study-int-for-bool", "study file with online = 2",
         _study(_STUDY_OK.replace("[strategies.naive]\n", "[strategies.ewc]\nonline = 2\n")),
         r"study\.toml:7: strategies\.ewc\.online: must be true or false, got 2"),
    Case("study-string-for-float", "study file with ewc_lambda = \"10\"",
         _study(_STUDY_OK.replace("[strategies.naive]\n", "[strategies.ewc]\newc_lambda = \"10\"\n")),
         r"study\.toml:7: strategies\.ewc\.ewc_lambda: must be a number, got '10'"),
    Case("hp-not-a-number", "--hp ewc.ewc_lambda=abc",
         _flags(*SYNTH, "--strategy", "ewc", "--hp", "ewc.ewc_lambda=abc"),
         r"ewc: ewc-lambda must be a number, got 'abc'"),
    Case("plasticity-not-a-number", "--plasticity redo_tau=abc",
         _flags(*SYNTH, "--strategy", "naive", "--redo", "--plasticity", "redo_tau=abc"),
         r"plasticity: redo-tau must be a number, got 'abc'"),
    Case("study-plasticity-not-a-number", "study file with plasticity = { redo_tau = \"abc\" }",
         _study(_STUDY_OK.replace("[benchmarks.synthetic]\n", "[benchmarks.synthetic]\n"
                                  "plasticity = { redo = true, redo_tau = \"abc\" }\n")),
         r"study\.toml:5: benchmarks\.synthetic\.plasticity: redo-tau must be a number, got 'abc'"),
    Case("plasticity-infinite", "--plasticity sp_noise=inf", _flags(*SYNTH, "--strategy", "naive", "--shrink-perturb",
                                                                    "--plasticity", "sp_noise=inf"),
         r"plasticity: sp-noise must be a finite number, got inf"),
    Case("benchmark-option-type", "--benchmark-option permute_fraction=abc",
         _flags("--benchmark", "permuted-digits", "--seeds", "1", "--strategy", "naive",
                "--benchmark-option", "permute_fraction=abc"),
         r"benchmark permuted-digits option permute_fraction must be a finite number, got 'abc'"),
    Case("study-benchmark-option-type", "study file with options = { dim = 1.5 }",
         _study(_STUDY_OK.replace("[benchmarks.synthetic]\n", "[benchmarks.synthetic]\noptions = { dim = 1.5 }\n")),
         r"study\.toml:5: benchmarks\.synthetic\.options\.dim: benchmark synthetic option dim must be an integer"),
    Case("backbone-option-type", "--backbone-option hidden=abc",
         _flags(*SYNTH, "--strategy", "naive", "--backbone-option", "hidden=abc"),
         r"backbone mlp option hidden must be a list of integers, got 'abc'"),
    # ---- odd encodings, sizes and numbers past what the generators take
    Case("study-not-utf8", "a study file with bytes that are not UTF-8 (a binary file)",
         _study_bytes(b"[study]\nseeds = 1\n\xff\xfe\x00\x01\n"),
         r"study\.toml:3: not a UTF-8 text file \(byte 0xff at offset 18\)"),
    Case("study-seed-too-big", "study file with seeds = [2**64]",
         _study(_STUDY_OK.replace("seeds = 1", "seeds = [18446744073709551616]")),
         r"study\.toml:2: study\.seeds: must be a count or a non-empty list of integers from 0 to 2\*\*32 - 1"),
    Case("study-seed-2-32", "study file with seeds = [4294967296] (2**32)",
         _study(_STUDY_OK.replace("seeds = 1", "seeds = [4294967296]")), r"study\.toml:2: study\.seeds: must be"),
    Case("too-many-tasks", "--tasks 1000000000", _flags(*SYNTH, "--strategy", "naive", "--tasks", "1000000000"),
         r"tasks must be a positive integer <= 10000, got 1000000000"),
    Case("too-many-runs-flags", "--seeds 1000000", _flags("--benchmark", "synthetic", "--seeds", "1000000"),
         r"is \d+ runs, more than the 100000 a study may have"),
    Case("too-many-runs-study", "a study of 200,000 runs (seeds = 200000)",
         _study(_STUDY_OK.replace("seeds = 1", "seeds = 200000")),
         r"study\.toml:2: study\.seeds: must be a count from 1 to 100000"),
    Case("too-many-runs-grid", "a study whose grid makes 10 x 20,000 runs",
         _study(_STUDY_OK.replace("seeds = 1", "seeds = 20000").replace(
             "[strategies.naive]\n", "[strategies.er]\nbuffer_size = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]\n")),
         r"study\.toml:6: strategies\.er: the study has more than 100000 runs \(at least 200000\)"),
    Case("too-many-epochs", "--epochs 100000000000000000000", _flags(*SYNTH, "--epochs", "100000000000000000000"),
         r"epochs must be <= 10000"),
    Case("model-too-large", "--hidden 100000,100000 (10 billion parameters)",
         _flags(*SYNTH, "--strategy", "naive", "--hidden", "100000,100000"),
         r"backbone mlp with \{'hidden': \(100000, 100000\)\} has 10,002,200,004 parameters, more than"),
    Case("backbone-cannot-be-built", "--backbone vit-tiny on flat inputs",
         _flags(*SYNTH, "--strategy", "naive", "--backbone", "vit-tiny"),
         r"vit-tiny: needs image inputs C x H x W, got input shape \(16,\)"),
    Case("hidden-not-integers", "--hidden abc", _flags(*SYNTH, "--hidden", "abc"),
         r"--hidden: expected integers separated by commas \(100,100\), got 'abc'"),
    Case("idx-zero-dims", "an IDX file with 0 dimensions", lambda t: _mnist_zero_dims(t),
         r"train-labels-idx1-ubyte\.gz: IDX file with 0 dimensions"),
    Case("idx-swapped", "images and labels files swapped", lambda t: _mnist_swapped(t),
         r"train-images-idx3-ubyte\.gz: expected N x 28 x 28 images, got shape \(6,\); it looks like a labels file"),
    Case("store-not-sqlite", "--store pointing at a CSV file", _store_not_sqlite,
         r"results\.db: not a SQLite database"),
    Case("store-newer-schema", "a store written by a newer retain (schema 99)", _store_newer,
         r"newer\.db: store schema version 99 is newer than this retain understands"),
]


def run_case(case: Case, tmp: Path, capsys) -> tuple[int, str]:
    argv = case.setup(tmp)
    if not any(a == "--out" for a in argv):
        argv = [*argv, "--out", str(tmp / "out")]
    try:
        rc = main(["run", *argv, "--quiet"])
    except SystemExit as exc:  # argparse's own refusals (an unknown flag, a bad type)
        rc = exc.code
    return rc, capsys.readouterr().err


def finished_runs(tmp: Path) -> int:
    n = 0
    for db in tmp.rglob("*.db"):
        try:
            with sqlite3.connect(db) as conn:
                n += conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'finished'").fetchone()[0]
        except sqlite3.DatabaseError:  # the not-SQLite case's file, left as it was
            pass
    return n


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_with_one_clear_line(case, tmp_path, capsys):
    rc, err = run_case(case, tmp_path, capsys)
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("retain: error: "), err
    assert re.search(case.needle, lines[0]), lines[0]
    assert finished_runs(tmp_path) == 0
    assert not (tmp_path / "out" / "summary.json").exists()
    assert not (tmp_path / "PWNED").exists()  # no pickle from disk ran code


def test_the_docs_table_lists_every_case():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "bad-inputs.md").read_text()
    missing = [c.name for c in CASES if f"`{c.name}`" not in doc]
    assert not missing, f"regenerate docs/bad-inputs.md (see this module's docstring): {missing}"


HEADER = """# Bad inputs and the messages they get

`retain` refuses bad input at the edge, before a run starts: one line on stderr that names the
file, field or value and what was expected, exit code 2, and no run marked finished in the store.
Each row below is a case of `tests/test_bad_input.py`, run through `retain run`, with the message
it actually printed (temporary paths shown as `<tmp>`). Regenerate with
`.venv/bin/python tests/test_bad_input.py > docs/bad-inputs.md`.

| case | bad input | exit | message |
| --- | --- | --- | --- |
"""


def _markdown() -> str:
    import contextlib
    import io
    import tempfile

    class Captured:  # what run_case needs from pytest's capsys
        def __init__(self, buf):
            self.buf = buf

        def readouterr(self):
            return type("Out", (), {"err": self.buf.getvalue()})

    rows = []
    for case in CASES:
        with tempfile.TemporaryDirectory() as d:
            buf = io.StringIO()
            with contextlib.redirect_stderr(buf), contextlib.redirect_stdout(io.StringIO()):
                rc, err = run_case(case, Path(d), Captured(buf))
            msg = err.strip().replace(str(Path(d).resolve()), "<tmp>").replace(d, "<tmp>").replace("|", "\\|")
            rows.append(f"| `{case.name}` | {case.what} | {rc} | `{msg}` |")
    return HEADER + "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(_markdown(), end="")
