"""Reports from the store alone: numbers in the Markdown, diagnostics, filters, the HTML in
real headless Chromium, and the TensorBoard export."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from retain.cli.main import main
from retain.errors import ConfigError
from retain.metrics.matrix import confidence_interval, summarize
from retain.report import write_report
from retain.store import Store
from retain.store.record import RunRecord

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def fake_run(strategy: str, seed: int, R: list[list[float]], wall: float, *, study: str = "s",
             benchmark: str = "synthetic", events=(), params=None, metrics=None, scenario=None,
             peak_mem: float = 100.0) -> RunRecord:
    """A finished run as the recorder stores it; ``metrics`` replaces the ones computed from R
    (e.g. only ``avg_acc`` for a method trained once on everything)."""
    config = {"benchmark": benchmark, "strategy": strategy, "seed": seed, "order": seed % 2, "tasks": len(R),
              "scenario": scenario, "backbone": "mlp", "hidden": [16], "epochs": 1, "batch_size": 16, "lr": 0.1,
              "optimizer": "sgd", "task_free": False, "params": params or {}, "benchmark_options": {}}
    return RunRecord(run_key=f"{benchmark}-{strategy}-{seed}-{json.dumps(params)}", study=study, benchmark=benchmark,
                strategy=strategy, seed=seed, task_order=list(range(len(R))), config=config,
                versions={"retain": "0.1.0", "torch": "x"}, revision="abc", status="finished", started_at=0.0,
                finished_at=1.0, wall_seconds=wall, peak_mem_mb=peak_mem, trainable_params=1234,
                metrics=summarize(R, [0.1] * len(R)) if metrics is None else metrics, acc_matrix=R,
                extra={"order": seed % 2, "command": "retain run x.toml"},
                task_seconds=[wall / len(R)] * len(R), eval_seconds=[0.01] * len(R), losses=[0.5] * len(R),
                events=list(events))


def naive_R(seed: int) -> list[list[float]]:
    return [[0.9, 0.1], [0.5 - 0.1 * seed, 0.9]]  # forgetting 0.4, 0.5, 0.6 for seeds 0, 1, 2


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(tmp_path / "r.db")
    for seed in range(3):
        s.save_run(fake_run("naive", seed, naive_R(seed), wall=1.0))
        s.save_run(fake_run("joint", seed, [[0.9, 0.1], [0.8, 0.9]], wall=3.0,
                            events=[{"task": 1, "kind": "plasticity-loss", "message": "dormant units 40%"}]
                            if seed == 0 else []))
    # Task 1 falls 5 points, under the 10 of a sudden-forgetting event (computed from R in reports).
    s.save_run(fake_run("naive", 0, [[0.9, 0.1], [0.85, 0.9]], wall=1.0, benchmark="other", study="t"))
    return s


FIGURES = ("heatmaps", "task-accuracy", "average-accuracy", "accuracy-forgetting", "accuracy-vs-cost", "memory")


def test_markdown_holds_measured_numbers(store, tmp_path):
    paths = write_report(store, tmp_path / "rep", study="s")
    md = paths["markdown"].read_text()
    forgetting = [0.4, 0.5, 0.6]
    m, h = confidence_interval([f * 100 for f in forgetting])
    assert "| naive | 3 |" in md and f"{m:.1f} ± {h:.1f}" in md
    # joint (the old, task-by-task one here) forgets 0.1 everywhere: reduction = (0.5 - 0.1) / 0.5 = 80 % in
    # every run, so no spread; cost 3x naive's training time; described by its class's docstring
    assert re.search(r"\| joint \| 80\.0 ± 0\.0 \| 3\.00x \| Re-initialise at the last task and train once on all", md)
    assert re.search(r"\| naive \| reference \| 1\.00x \|", md)  # naive is not compared with itself
    assert "## Benchmark: synthetic" in md and "Benchmark: other" not in md  # study filter
    assert "| joint | plasticity-loss | 1/3 | 2 | dormant units 40% |" in md  # stored task 1 is the 2nd task
    assert "```\nretain run x.toml\n```" in md
    for name in FIGURES:
        png = tmp_path / "rep" / "plots" / f"synthetic-{name}.png"
        assert f"(plots/synthetic-{name}.png)" in md and png.read_bytes()[:4] == b"\x89PNG"


def test_task_numbers_in_tables_are_one_based_ranges():
    from retain.report.tables import task_ranges

    assert task_ranges({1, 3, 4, 5}) == "1, 3–5" and task_ranges(set()) == "—"


def test_filters_no_warnings_and_failed_runs(store, tmp_path):
    failed = fake_run("joint", 7, naive_R(0), 1.0, study="t", benchmark="other") | {
        "status": "failed", "error": "DivergedError: loss became non-finite"}
    store.save_run(failed)
    md = write_report(store, tmp_path / "o", benchmark="other")["markdown"].read_text()
    assert "No warnings" in md and "joint seed 7 order 1: DivergedError" in md and "synthetic" not in md
    with pytest.raises(ConfigError, match="no finished runs match strategy=.*lwf"):
        write_report(store, tmp_path / "o", strategy=["lwf"])


def test_grid_groups_are_labelled_by_what_differs(tmp_path):
    s = Store(tmp_path / "g.db")
    for lam in (1.0, 10.0):
        s.save_run(fake_run("ewc", 0, naive_R(0), 1.0, params={"ewc_lambda": lam}))
    md = write_report(s, tmp_path / "g")["markdown"].read_text()
    assert "| ewc (ewc_lambda=1.0) |" in md and "| ewc (ewc_lambda=10.0) |" in md


def test_html_is_self_contained(store, tmp_path):
    html = write_report(store, tmp_path / "h", study="s")["html"].read_text()
    assert html.count('src="data:image/png;base64,') == len(FIGURES)
    assert not re.search(r'(src|href)="(?!data:)', html)  # nothing fetched from elsewhere


def test_report_command_and_missing_store(store, tmp_path, capsys):
    assert main(["report", str(store.path), "--out", str(tmp_path / "c"), "--strategy", "naive"]) == 0
    assert "| naive |" in (tmp_path / "c" / "report.md").read_text()
    assert main(["report", str(tmp_path / "nope.db")]) == 2
    assert "no results store" in capsys.readouterr().err


def test_tensorboard_export_writes_the_accuracy_matrix(store, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    write_report(store, tmp_path / "r", strategy="naive", benchmark="synthetic", tensorboard=tmp_path / "tb")
    runs = sorted((tmp_path / "tb").iterdir())
    assert len(runs) == 3
    acc = EventAccumulator(str(runs[1])).Reload()
    task1 = [(e.step, round(e.value, 4)) for e in acc.Scalars("accuracy/task_1")]
    assert task1 == [(1, 0.9), (2, 0.4)]  # seed 1: R[0][0], R[1][0]
    assert np.isclose(acc.Scalars("final/forgetting")[0].value, 0.5)


CHECK = """<script>window.addEventListener("load", () => {
  const imgs = [...document.images];
  const out = document.createElement("pre"); out.id = "retain-check";
  out.textContent = JSON.stringify({images: imgs.length,
    loaded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
    scale: imgs.map(i => i.width / i.naturalWidth),
    tables: document.querySelectorAll("table").length,
    cells: [...document.querySelectorAll("table")].map(t => t.rows.length * t.rows[0].cells.length)});
  document.body.appendChild(out);
});</script>"""


def _chromium() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("chromium is missing under CI=true (.ci/run installs it)")
    pytest.skip("chromium not installed (apt-get install chromium)")


@pytest.mark.slow
def test_html_renders_in_headless_chromium(store, tmp_path):
    browser = _chromium()
    html = write_report(store, tmp_path / "w", study="s")["html"]
    page = tmp_path / "w" / "check.html"
    page.write_text(html.read_text().replace("</body>", CHECK + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600", "--virtual-time-budget=5000"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    found = re.search(r'<pre id="retain-check">(.*?)</pre>', dom)
    assert found, f"the check script did not run; DOM starts: {dom[:300]!r}"
    check = json.loads(found.group(1).replace("&quot;", '"'))
    assert check["images"] == len(FIGURES) and check["loaded"] == len(FIGURES)  # every plot decoded
    # shown at (nearly) natural size in a 1200 px window, so 9 pt labels stay ~13 px, not shrunk to 5
    assert min(check["scale"]) > 0.9, check["scale"]
    assert check["tables"] == 4 and all(c > 0 for c in check["cells"])  # setup, results, comparison, diagnostics
    shot = tmp_path / "w" / "shot.png"
    subprocess.run([browser, *flags[:-1], f"--screenshot={shot}", html.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 20_000
