"""Crash safety of the store: a study killed with SIGKILL at random points, several times, leaves
a store that passes ``PRAGMA integrity_check``, never loses or duplicates a finished run, and
the study started again completes with the same numbers as a study never interrupted.

Run by hand for more kills (the figures in docs/bad-inputs.md come from this):
    .venv/bin/python tests/test_store_crash.py --kills 20 --seeds 8
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

SEEDS = 5


def study_cmd(out: Path, seeds: int) -> list[str]:
    return [sys.executable, "-m", "retain", "run", "--benchmark", "synthetic", "--strategy", "naive",
            "--tasks", "3", "--seeds", str(seeds), "--out", str(out), "--checkpoint-dir", str(out / "ckpt"),
            "--quiet", "--no-report"]


def finished(db: Path) -> list[str]:
    """Keys of the finished runs, read as any other process would (WAL lets readers in)."""
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return [r[0] for r in conn.execute("SELECT run_key FROM runs WHERE status = 'finished'")]
    except sqlite3.OperationalError:  # the schema is not there yet: killed while creating it
        return []
    finally:
        conn.close()


def check_store(db: Path, before: set[str]) -> set[str]:
    """Integrity, no duplicate, nothing lost since ``before``; returns the finished keys."""
    if not db.exists():
        assert not before
        return set()
    conn = sqlite3.connect(db, timeout=30)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        runs_without_rows = conn.execute(
            "SELECT COUNT(*) FROM runs r WHERE status = 'finished' AND NOT EXISTS "
            "(SELECT 1 FROM accuracy a WHERE a.run_id = r.id)").fetchone()[0]
        assert runs_without_rows == 0, "a finished run without its accuracy rows"
    finally:
        conn.close()
    keys = finished(db)
    assert len(keys) == len(set(keys)), f"duplicated finished runs: {keys}"
    lost = before - set(keys)
    assert not lost, f"finished runs lost: {lost}"
    return set(keys)


def kill_once(out: Path, seeds: int, rng: random.Random, env: dict) -> bool:
    """Start the study, wait until it has finished one more run than before (or a random moment
    when it is already done), then SIGKILL it at a random point. True if the kill hit it alive."""
    db = out / "retain.db"
    start = len(finished(db))
    proc = subprocess.Popen(study_cmd(out, seeds), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while proc.poll() is None and len(finished(db)) <= start and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 0.4))  # somewhere in training, evaluation, a checkpoint or a write
    alive = proc.poll() is None
    if alive:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if not alive:
        assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
    proc.stderr.close()
    return alive


def kill_study(out: Path, *, seeds: int, kills: int, seed: int) -> dict:
    """Kill the study ``kills`` times, checking the store after each, then let it finish."""
    rng = random.Random(seed)
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    keys: set[str] = set()
    landed = 0
    for _ in range(kills):
        landed += kill_once(out, seeds, rng, env)
        keys = check_store(out / "retain.db", keys)
        summary = out / "summary.json"
        if summary.exists():
            json.loads(summary.read_text())  # written atomically: never half a file
    done = subprocess.run(study_cmd(out, seeds), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    keys = check_store(out / "retain.db", keys)
    return {"kills_tried": kills, "kills_landed": landed, "finished": len(keys), "expected": seeds,
            "lost": seeds - len(keys)}


@pytest.mark.slow
def test_sigkilled_study_loses_nothing_and_completes(tmp_path):
    seed = random.SystemRandom().randrange(10**6)
    stats = kill_study(tmp_path, seeds=SEEDS, kills=3, seed=seed)
    assert stats["finished"] == SEEDS and stats["lost"] == 0, (seed, stats)
    assert stats["kills_landed"] >= 1, (seed, stats)
    # Same numbers as runs never interrupted (checkpoints resumed under kills included).
    from retain.config.run import RunConfig
    from retain.store import Store
    from retain.training.loop import run_experiment

    runs = {r["seed"]: r["acc_matrix"] for r in Store(tmp_path / "retain.db").runs()}
    for s in range(SEEDS):
        assert runs[s] == run_experiment(RunConfig(benchmark="synthetic", tasks=3, seed=s)).acc_matrix, (seed, s)
    assert list((tmp_path / "ckpt").glob("*.pt")) == []


if __name__ == "__main__":
    import argparse
    import tempfile

    p = argparse.ArgumentParser()
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        print(json.dumps(kill_study(Path(d), seeds=a.seeds, kills=a.kills, seed=a.seed)
                         | {"seconds": round(time.perf_counter() - t0, 1)}))
