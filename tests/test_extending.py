"""docs/extending.md as written: the files it shows are the files in examples/plugins/, each
command it gives runs through the CLI (with tiny settings) and has the effect the page says, and
its pyproject entry points work from an installed package."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from retain.store import Store

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "extending.md"
EXAMPLES = ROOT / "examples" / "plugins"
EX = "examples/plugins/"
PLUGINS = {"my-er": "my_er.py", "noisy-digits": "noisy_digits.py", "wide-mlp": "wide_mlp.py",
           "worst_task": "worst_task.py", "csv-losses": "csv_losses.py"}
TINY = ["--tasks", "2", "--epochs", "1", "--seeds", "1", "--workers", "1", "--threads", "1", "--quiet", "--no-report",
        "--warnings", "none"]


def shown_files() -> dict[str, str]:
    """Path -> text of every file the page shows whole: a ```python block right after `PATH`:."""
    blocks = re.findall(r"^`(examples/plugins/\w+\.py)`:\n\n```python\n(.*?)^```$", DOC.read_text(), re.M | re.S)
    return dict(blocks)


def commands(text: str) -> list[str]:
    """The `retain ...` command lines of ``text`` (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", "", text)
    return [" ".join(line.split()) for line in text.splitlines() if line.strip().startswith("retain ")]


def doc_commands(example: str) -> list[list[str]]:
    """The page's commands that load ``examples/plugins/EXAMPLE``, as argument lists without `retain`."""
    blocks = re.findall(r"^```bash\n(.*?)^```$", DOC.read_text(), re.M | re.S)
    found = [shlex.split(c)[1:] for b in blocks for c in commands(b) if f"examples/plugins/{example}" in c]
    assert found, f"docs/extending.md runs no command with examples/plugins/{example}"
    return found


def retain(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "retain", *args], capture_output=True, text=True, env=full,
                          cwd=ROOT, timeout=600)


#: Runs argument lists through `retain`'s entry point one after another in one process, so the
#: imports (torch, scikit-learn) are paid once, and prints what each returned and printed as JSON.
DRIVER = """
import contextlib, io, json, sys
from retain.cli.main import main
done = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    done.append({"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()})
print(json.dumps(done))
"""


@dataclass
class Done:
    """One command of the page as run: exit code, what it printed, its output folder and stored runs."""

    rc: int
    stdout: str
    stderr: str
    out: Path

    @property
    def runs(self) -> list:
        assert self.rc == 0, self.stderr
        runs = Store(self.out / "retain.db", readonly=True).runs()
        assert runs and all(x.status == "finished" for x in runs)
        return runs


def drive(commands: list[list[str]]) -> list[tuple[int, str, str]]:
    """(exit code, stdout, stderr) of each command, run in one fresh process by DRIVER."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "200"}  # tables unwrapped
    r = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(commands)], capture_output=True, text=True,
                       env=env, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr
    return [(d["rc"], d["stdout"], d["stderr"]) for d in json.loads(r.stdout.splitlines()[-1])]


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> dict[str, Done]:
    """The page's commands with tiny settings, each kind in its own output folder. The runs share a
    process; `retain report` and `retain list` get a fresh one, so that only their own --plugin
    files can have registered what they show."""
    base = tmp_path_factory.mktemp("extending")
    runs: dict[str, tuple[list[str], Path]] = {}
    for kind, example in (("strategy", "my_er.py"), ("benchmark", "noisy_digits.py"), ("backbone", "wide_mlp.py"),
                          ("metric", "worst_task.py"), ("logger", "csv_losses.py")):
        (run,) = [a for a in doc_commands(example) if a[0] == "run"]
        runs[kind] = ([*run, *TINY, "--out", str(base / kind)], base / kind)
    runs["width=0"] = (["run", "--plugin", EX + "wide_mlp.py", "--backbone", "wide-mlp", "--backbone-option",
                        "width=0", "--strategy", "er", *TINY, "--out", str(base / "bad")], base / "bad")
    (report,) = [a for a in doc_commands("worst_task.py") if a[0] == "report"]
    store = str(base / "metric" / "retain.db")
    fresh = {"metric report": ([store if a == "retain-results/retain.db" else a for a in report], base / "metric"),
             "list": (["list", *[a for f in PLUGINS.values() for a in ("--plugin", EX + f)]], base)}
    done = {}
    for todo in (runs, fresh):
        for (kind, (_, out)), result in zip(todo.items(), drive([argv for argv, _ in todo.values()])):
            done[kind] = Done(*result, out)
    return done


def sha(example: str) -> str:
    return hashlib.sha256((EXAMPLES / example).read_bytes()).hexdigest()


def test_the_files_shown_are_the_example_files():
    shown = shown_files()
    assert sorted(shown) == sorted(EX + p.name for p in EXAMPLES.glob("*.py"))
    for path, text in shown.items():
        assert text == (ROOT / path).read_text(), f"docs/extending.md shows an outdated {path}"


def test_each_example_names_the_command_the_page_runs():
    blocks = "\n".join(re.findall(r"^```bash\n(.*?)^```$", DOC.read_text(), re.M | re.S))
    for path in EXAMPLES.glob("*.py"):
        docstring = path.read_text().split('"""')[1]
        assert commands(docstring) and set(commands(docstring)) <= set(commands(blocks)), path.name


def test_strategy(ran):
    (run,) = ran["strategy"].runs
    assert run.strategy == "my-er" and run.config["params"] == {"buffer_size": 200, "replay_weight": 0.5}
    assert sha("my_er.py") in run.config["plugins"].values()  # the file's source is in the run key


def test_benchmark(ran):
    (run,) = ran["benchmark"].runs
    assert run.benchmark == "noisy-digits" and run.config["benchmark_options"] == {"max_std": 0.5}
    assert len(run.acc_matrix) == 2 and sha("noisy_digits.py") in run.config["plugins"].values()


def test_backbone(ran):
    (run,) = ran["backbone"].runs
    assert run.config["backbone_options"] == {"width": 512, "dropout": 0.2}
    assert run.trainable_params == 64 * 512 + 512 + 512 * 10 + 10 == 38_410  # the count the page gives
    assert sha("wide_mlp.py") in run.config["plugins"].values()
    bad = ran["width=0"]
    assert bad.rc == 2 and bad.stderr == ("retain: error: backbone wide-mlp cannot be built with {'width': 0} "
                                          "for inputs (64,): width must be >= 1, got 0\n")
    assert not (bad.out / "retain.db").exists()  # refused before anything was written


def test_metric(ran):
    runs = ran["metric"].runs
    assert "worst task %" in ran["metric"].stdout  # the results table after the runs
    report = ran["metric report"]
    assert report.rc == 0, report.stderr
    rows = {row["strategy"]: row for row in csv.DictReader(io.StringIO(report.stdout))}
    assert sorted(rows) == sorted(r.strategy for r in runs) == ["er", "naive"]
    for run in runs:
        assert float(rows[run.strategy]["worst_task_pct_mean"]) == pytest.approx(100 * min(run.acc_matrix[-1]),
                                                                                  abs=1e-3)
    from retain.report import render_table

    # Without the plugin the column is gone: the store keeps matrices, not metric code.
    assert "worst_task" not in render_table(Store(report.out / "retain.db", readonly=True), "csv")


def test_logger(ran):
    from retain.config.run import RunConfig
    from retain.training.loop import build

    (run,) = ran["logger"].runs
    rows = list(csv.reader((ran["logger"].out / "losses.csv").read_text().splitlines()))
    bench, _ = build(RunConfig(benchmark="permuted-digits", strategy=run.strategy, tasks=2, epochs=1))
    per_task = [math.ceil(e.num_train / run.config["batch_size"]) for e in bench.experiences]
    assert [int(row[2]) for row in rows] == list(range(1, sum(per_task) + 1))  # one row per optimiser step
    assert [row[1] for row in rows] == ["0"] * per_task[0] + ["1"] * per_task[1]
    assert {row[0] for row in rows} == {run.run_key} and all(math.isfinite(float(row[3])) for row in rows)
    assert "plugins" not in run.config  # a logger is not part of what a run computes


def names_with_origin(listing: str) -> dict[str, str]:
    """`retain list` lines with an origin: name -> the text in the brackets."""
    return {m[1]: m[2] for m in re.finditer(r"^ [* ](\S+) .*\[(.+)\]$", listing, re.M)}


def test_list_shows_each_plugin_and_its_file(ran):
    assert ran["list"].rc == 0, ran["list"].stderr
    assert names_with_origin(ran["list"].stdout) == {n: f"file {EXAMPLES / f}" for n, f in PLUGINS.items()}


def test_the_pages_entry_points_work_from_an_installed_package(tmp_path):
    """The page's pyproject lines, installed as pip would leave them, over copies of the examples."""
    import tomllib

    pkg = tmp_path / "my_package"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for f in PLUGINS.values():
        (pkg / f).write_text((EXAMPLES / f).read_text())
    declared = [tomllib.loads(b) for b in re.findall(r"^```toml\n(.*?)^```$", DOC.read_text(), re.M | re.S)]
    groups = {g: eps for d in declared for g, eps in d["project"]["entry-points"].items()}
    info = tmp_path / "my_package-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-package\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n" for g, eps in groups.items()))
    r = retain("list", env={"PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{tmp_path}"})
    assert r.returncode == 0, r.stderr
    found = names_with_origin(r.stdout)
    assert sorted(found) == sorted(PLUGINS)
    for name, group in zip(PLUGINS, ("retain.strategies", "retain.benchmarks", "retain.backbones", "retain.metrics",
                                     "retain.loggers")):
        (ep,) = groups[group]
        assert found[name] == f"package my-package (entry point {group}:{ep})"
