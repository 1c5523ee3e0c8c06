"""Plugins from outside the package: a file given with --plugin or listed in a study file, an
installed package's entry points, a wrapper script's own strategy; in every worker, with the
plugin's source in the run key. And the one config spine: a run is resolved once."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "plugins"
FAST = ["--seeds", "1", "--quiet", "--no-report", "--warnings", "none"]


def retain(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "retain", *args], capture_output=True, text=True, env=full,
                          cwd=cwd, timeout=600)


def stored(out: Path) -> list[dict]:
    with sqlite3.connect(out / "retain.db") as conn:
        rows = conn.execute("SELECT strategy, status, config FROM runs ORDER BY id").fetchall()
    return [{"strategy": s, "status": st, "config": json.loads(c)} for s, st, c in rows]


def test_file_plugins_run_in_a_process_pool_with_their_source_in_the_key(tmp_path):
    out = tmp_path / "out"
    r = retain("run", "--plugin", str(EXAMPLES / "my_er.py"), "--plugin", str(EXAMPLES / "noisy_digits.py"),
               "--benchmark", "noisy-digits", "--tasks", "2", "--epochs", "1", "--strategy", "my-er",
               "--replay-weight", "0.5", "--seeds", "2", "--workers", "2", "--out", str(out),
               "--quiet", "--no-report", "--warnings", "none")
    assert r.returncode == 0, r.stderr
    runs = stored(out)
    assert [x["status"] for x in runs] == ["finished", "finished"]
    cfg = runs[0]["config"]
    assert cfg["params"] == {"buffer_size": 200, "replay_weight": 0.5}  # its own flag reached it
    shas = set(cfg["plugins"].values())
    import hashlib

    assert hashlib.sha256((EXAMPLES / "my_er.py").read_bytes()).hexdigest() in shas
    assert hashlib.sha256((EXAMPLES / "noisy_digits.py").read_bytes()).hexdigest() in shas


def test_changing_a_plugins_code_reruns_its_runs_and_not_others(tmp_path):
    plugin = tmp_path / "my_er.py"
    shutil.copy(EXAMPLES / "my_er.py", plugin)
    out = tmp_path / "out"
    args = ["run", "--plugin", str(plugin), "--strategy", "my-er", "--strategy", "naive", "--tasks", "2",
            "--epochs", "1", "--out", str(out), "--workers", "1", *FAST]
    assert retain(*args).returncode == 0
    again = retain(*args)
    assert "2 of 2 runs already finished" in again.stdout + again.stderr  # unchanged code: reused
    plugin.write_text(plugin.read_text().replace("past = self.buffer.sample(32)", "past = self.buffer.sample(16)"))
    changed = retain(*args)
    assert changed.returncode == 0, changed.stderr
    assert "1 of 2 runs already finished" in changed.stdout + changed.stderr  # naive reused, my-er run again
    assert [x["strategy"] for x in stored(out)] == ["my-er", "naive", "my-er"]


def test_a_study_file_lists_its_plugins_relative_to_itself(tmp_path):
    (tmp_path / "plugins").mkdir()
    shutil.copy(EXAMPLES / "my_er.py", tmp_path / "plugins" / "my_er.py")
    study = tmp_path / "s.toml"
    study.write_text(textwrap.dedent("""
        plugins = ["plugins/my_er.py"]
        [study]
        seeds = 2
        [settings]
        epochs = 1
        tasks = 2
        [benchmarks.permuted-digits]
        [strategies.my-er]
        replay_weight = [0.5, 1.0]
    """))
    r = retain("run", str(study), "--out", str(tmp_path / "out"), "--workers", "2", "--quiet", "--no-report")
    assert r.returncode == 0, r.stderr
    runs = stored(tmp_path / "out")
    assert sorted(x["config"]["params"]["replay_weight"] for x in runs) == [0.5, 0.5, 1.0, 1.0]


def test_bad_plugins_are_refused_in_one_line(tmp_path):
    r = retain("run", "--plugin", str(tmp_path / "missing.py"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "missing.py: cannot read it" in r.stderr
    broken = tmp_path / "broken.py"
    broken.write_text("import torch\n\nraise RuntimeError('half-written plugin')\n")
    r = retain("run", "--plugin", str(broken))
    assert r.returncode == 2 and f"plugin {broken}:3: RuntimeError: half-written plugin" in r.stderr
    study = tmp_path / "s.toml"
    study.write_text('plugins = "my_er.py"\n[benchmarks.permuted-digits]\n[strategies.naive]\n')
    r = retain("run", str(study), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "s.toml:1: plugins: must be a list of plugin file paths" in r.stderr


def _tiny_package(site: Path) -> None:
    """An installed distribution as pip leaves it: the package and its .dist-info with entry points."""
    pkg = site / "tinyplug"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent('''
        """A package that brings a strategy and a backbone to retain through entry points."""
        from torch import nn

        from retain.strategies import Strategy


        class Halved(Strategy):
            """Naive fine-tuning at half the loss (a stand-in for a packaged method)."""

            default_study = False

            def observe(self, x, y, task, *, plain=None):
                loss = 0.5 * nn.functional.cross_entropy(self.model(x), y)
                self.step(loss)
                return {"loss": loss.detach()}


        class WideMLP(nn.Module):
            """One hidden layer of ``width`` units, with ``features`` and ``head`` as retain expects."""

            def __init__(self, inputs, num_classes, width):
                super().__init__()
                self.body = nn.Sequential(nn.Flatten(), nn.Linear(inputs, width), nn.ReLU())
                self.head = nn.Linear(width, num_classes)

            def features(self, x):
                return self.body(x)

            def forward(self, x):
                return self.head(self.body(x))


        def wide_mlp(input_shape, num_classes, width: int = 64):
            """One hidden layer of ``width`` units."""
            import math

            return WideMLP(math.prod(input_shape), num_classes, width)
    '''))
    info = site / "tinyplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinyplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[retain.strategies]\nhalved = tinyplug:Halved\n\n"
                                           "[retain.backbones]\nwide-mlp = tinyplug:wide_mlp\n")


def test_entry_point_plugins_of_an_installed_package_show_in_list_and_run(tmp_path):
    site = tmp_path / "site"
    _tiny_package(site)
    env = {"PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{site}"}
    listing = retain("list", env=env)
    assert listing.returncode == 0, listing.stderr
    line = next(x for x in listing.stdout.splitlines() if " halved " in f" {x} ")
    assert "package tinyplug (entry point retain.strategies:halved)" in line
    assert any("wide-mlp" in x and "package tinyplug" in x for x in listing.stdout.splitlines())
    naive = next(x for x in listing.stdout.splitlines() if x.split()[0].lstrip("*") == "naive")
    assert "[" not in naive  # built-ins carry no origin
    out = tmp_path / "out"
    r = retain("run", "--strategy", "halved", "--backbone", "wide-mlp", "--backbone-option", "width=32",
               "--tasks", "2", "--epochs", "1", "--seeds", "2", "--workers", "2", "--out", str(out),
               "--quiet", "--no-report", "--warnings", "none", env=env)
    assert r.returncode == 0, r.stderr
    assert [x["status"] for x in stored(out)] == ["finished", "finished"]


def test_a_wrapper_scripts_own_strategy_runs_on_two_workers(tmp_path):
    script = tmp_path / "wrapper.py"
    script.write_text(textwrap.dedent(f'''
        import sys

        from retain.cli.main import main
        from retain.strategies import Strategy, register_strategy


        @register_strategy("wrapped-naive")
        class WrappedNaive(Strategy):
            """Naive fine-tuning, registered by the script that starts retain."""

            default_study = False


        if __name__ == "__main__":
            sys.exit(main(["run", "--strategy", "wrapped-naive", "--tasks", "2", "--epochs", "1", "--seeds", "2",
                           "--workers", "2", "--out", {str(tmp_path / "out")!r}, "--quiet", "--no-report"]))
    '''))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert r.returncode == 0, r.stderr
    assert [x["status"] for x in stored(tmp_path / "out")] == ["finished", "finished"]


@pytest.mark.slow
def test_file_plugins_load_on_ray_workers(tmp_path):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    out = tmp_path / "out"
    r = retain("run", "--plugin", str(EXAMPLES / "my_er.py"), "--strategy", "my-er", "--tasks", "2",
               "--epochs", "1", "--seeds", "2", "--backend", "ray", "--workers", "2", "--out", str(out),
               "--quiet", "--no-report", "--warnings", "none")
    assert r.returncode == 0, r.stderr
    assert [x["status"] for x in stored(out)] == ["finished", "finished"]


def test_a_module_dropped_into_a_component_package_registers_itself(tmp_path, monkeypatch):
    pkg = tmp_path / "dropin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from retain.registry import Registry, import_submodules\n"
                                     "THINGS = Registry('thing')\nimport_submodules(__name__, __path__)\n")
    (pkg / "new_one.py").write_text("from dropin import THINGS\n\n@THINGS.register('new-one')\ndef f():\n"
                                    "    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    assert "new-one" in importlib.import_module("dropin").THINGS


def test_one_run_is_resolved_once(tmp_path, monkeypatch):
    """One `retain run --strategy derpp --seeds 1` resolves its run once: one check of every value,
    one build of the strategy's hyperparameters (it once was 10 and 20)."""
    from retain.cli.main import main
    from retain.config import run as run_module
    from retain.strategies.config import StrategyConfig

    built = []
    original = StrategyConfig.from_params.__func__
    monkeypatch.setattr(StrategyConfig, "from_params",
                        classmethod(lambda cls, s, p: built.append(s) or original(cls, s, p)))
    before = run_module.RESOLVE_CALLS
    rc = main(["run", "--strategy", "derpp", "--seeds", "1", "--tasks", "2", "--epochs", "1", "--workers", "1",
               "--out", str(tmp_path), "--quiet", "--no-report", "--warnings", "none"])
    assert rc == 0
    assert run_module.RESOLVE_CALLS - before == 1
    assert built == ["derpp"]
    before = run_module.RESOLVE_CALLS
    assert main(["run", "--strategy", "er", "--strategy", "naive", "--seeds", "2", "--tasks", "2", "--epochs", "1",
                 "--workers", "1", "--out", str(tmp_path), "--quiet", "--no-report", "--warnings", "none"]) == 0
    assert run_module.RESOLVE_CALLS - before == 4  # one per run, whatever the number of runs


def test_a_resolved_run_is_frozen_and_complete():
    import dataclasses

    from retain.config.run import RunConfig

    spec = RunConfig(strategy="online-lora").resolve()
    # its paper's optimizer; the rest from the benchmark's training defaults
    assert (spec.optimizer, spec.epochs, spec.batch_size) == ("adam", 10, 32)
    assert spec.params["lora_rank"] >= 1 and spec.key == RunConfig(strategy="online-lora").key()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.lr = 1.0


def test_reserved_names_and_a_refused_benchmark_leave_the_built_ins_alone(tmp_path):
    """A plugin may not register a composite's name (er+ewc) or a resolver's (folder:...), and a
    refused register_benchmark must not have changed the built-in's training defaults."""
    shadow = tmp_path / "shadow.py"
    shadow.write_text("from retain.strategies import register_strategy\n"
                      "from retain.strategies.naive import Naive\n\n"
                      "register_strategy('er+ewc')(type('Fake', (Naive,), {}))\n")
    r = retain("run", "--plugin", str(shadow), "--strategy", "er+ewc", "--tasks", "2", "--out", str(tmp_path / "o"),
               *FAST)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert f"plugin {shadow}:4: ValueError: strategy name 'er+ewc' is reserved" in r.stderr
    folder = tmp_path / "folder.py"
    folder.write_text("from retain.benchmarks import register_benchmark\n\n"
                      "register_benchmark('folder:/tmp/x')(lambda **kw: None)\n")
    r = retain("run", "--plugin", str(folder), "--out", str(tmp_path / "o"), *FAST)
    assert r.returncode == 2 and "benchmark name 'folder:/tmp/x' is reserved" in r.stderr, r.stderr

    from retain.benchmarks import register_benchmark
    from retain.benchmarks.registry import TRAINING_DEFAULTS

    before = dict(TRAINING_DEFAULTS["permuted-digits"])
    with pytest.raises(ValueError, match="registered twice"):
        register_benchmark("permuted-digits", lr=0.5, batch_size=128)(lambda **kw: None)
    assert TRAINING_DEFAULTS["permuted-digits"] == before


@pytest.mark.parametrize("body, code, text", [
    ("import sys\nsys.exit(0)\n", 2, ":2: called sys.exit(0) while being loaded"),
    ("raise KeyboardInterrupt\n", 130, "retain: interrupted while loading plugins"),
])
def test_a_plugin_that_exits_or_is_interrupted_at_import_gets_one_line(tmp_path, body, code, text):
    plugin = tmp_path / "p.py"
    plugin.write_text(body)
    r = retain("run", "--plugin", str(plugin), "--out", str(tmp_path / "o"), *FAST)
    assert r.returncode == code and r.stderr.count("\n") == 1 and text in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "o").exists()


def test_a_plugin_hyperparameter_named_like_a_run_flag_is_one_line(tmp_path):
    plugin = tmp_path / "seedy.py"
    plugin.write_text(textwrap.dedent('''
        from dataclasses import dataclass

        from retain.strategies import StrategyConfig, hp, register_strategy
        from retain.strategies.naive import Naive


        @register_strategy("seedy")
        class Seedy(Naive):
            default_study = False

            @dataclass
            class Config(StrategyConfig):
                seeds: int = hp(3, help="clashes with retain run --seeds")
    '''))
    r = retain("run", "--plugin", str(plugin), "--strategy", "seedy", "--out", str(tmp_path / "o"), *FAST)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"strategy 'seedy' (file {plugin}): its hyperparameter 'seeds' would be the flag --seeds" in r.stderr


def test_an_entry_point_under_a_reserved_name_is_one_line(tmp_path):
    site = tmp_path / "site"
    _tiny_package(site)
    (site / "tinyplug-0.1.dist-info" / "entry_points.txt").write_text("[retain.strategies]\ner+ewc = tinyplug:Halved\n")
    r = retain("run", "--strategy", "er+ewc", "--tasks", "2", "--out", str(tmp_path / "o"), *FAST,
               env={"PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{site}"})
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert "package tinyplug (entry point retain.strategies:er+ewc): the name 'er+ewc' is reserved" in r.stderr
