"""Data larger than memory: a memory-mapped uint8 data set trains and evaluates in bounded memory.

The bound is on *anonymous* resident memory (``RssAnon`` in /proc/self/status): what the process
itself allocated. Pages of the memory-mapped file count as ``RssFile`` instead; they are the
kernel's page cache, clean copies of the file that it drops under memory pressure and reads back
on the next access, so a data set larger than RAM never needs them all resident at once. A run
that loaded the data set into memory would instead grow ``RssAnon`` by its full size, which the
control case below shows.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from processes import env
from retain.benchmarks import from_arrays
from retain.data.mapped import MappedRows, open_mapped

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc for RssAnon")

# The cap sits between what streaming costs and what loading costs. Streaming grew RssAnon by 17-19 MB
# on an idle machine (2026-12-02) and by 28-45 MB under a load of about 5 (2026-12-03, on commits
# before and after the data-parallel merge alike); loading the data grows it by at least DATA_MB (173 MB).
DATA_MB, CAP_MB = 80, 60
SIDE = 16  # small samples: many of them, so the data set is large next to any one batch

# Runs in a fresh interpreter: warms torch up on a tiny run (its lazy imports are not the data's
# cost), then samples RssAnon every 2 ms while ER trains one epoch over the data set and
# evaluates every task after each one. Prints the peak growth over the warmed-up baseline.
CHILD = textwrap.dedent("""
    import json, re, sys, threading, time
    import numpy as np, torch
    from retain.benchmarks import from_arrays, register_benchmark
    from retain.config.run import RunConfig
    from retain.training.loop import run_experiment

    torch.set_num_threads(1)
    mode, x_path, y_path, n_train = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

    def anon_mb():
        with open("/proc/self/status") as f:
            return int(re.search(r"RssAnon:\\s+(\\d+)", f.read()).group(1)) / 1024

    run_experiment(RunConfig(benchmark="synthetic", strategy="er", epochs=1, params={"buffer_size": 50}))

    @register_benchmark("big", epochs=1, batch_size=256, lr=0.05)
    def big(*, tasks=None, seed=0, scenario=None, data_dir=None):
        x = np.load(x_path, mmap_mode="r")
        if mode == "memory":
            x = np.array(x)  # the control: the whole data set in anonymous memory
        y = np.load(y_path)
        return from_arrays(x[:n_train], y[:n_train], x[n_train:], y[n_train:], tasks=tasks, scenario=scenario,
                           name="big")

    base, peak, done = anon_mb(), [0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], anon_mb())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    result = run_experiment(RunConfig(benchmark="big", strategy="er", tasks=2, params={"buffer_size": 500}))
    done.set()
    sampler.join()
    peak[0] = max(peak[0], anon_mb())
    print(json.dumps({"growth_mb": peak[0] - base, "base_mb": base, "acc": result.acc_matrix,
                      "storage": None}))
""")


def _write_data(tmp: Path) -> tuple[Path, Path, int]:
    """An ``N x 16 x 16`` uint8 file of DATA_MB written in chunks (never whole in this process):
    each of 10 classes a bright square at its own place on noise, so a model can learn it."""
    n = -(-DATA_MB * 2**20 // SIDE**2)
    x_path, y_path = tmp / "x.npy", tmp / "y.npy"
    x = np.lib.format.open_memmap(x_path, mode="w+", dtype=np.uint8, shape=(n, SIDE, SIDE))
    y = np.arange(n, dtype=np.int64) % 10
    rng = np.random.default_rng(0)
    for i in range(0, n, 8192):
        chunk = rng.integers(0, 100, (min(8192, n - i), SIDE, SIDE), dtype=np.uint8)
        for c in range(10):
            r, q = divmod(c, 4)
            chunk[y[i:i + len(chunk)] == c, r * 5:r * 5 + 5, q * 4:q * 4 + 4] = 255
        x[i:i + len(chunk)] = chunk
    x.flush()
    del x
    np.save(y_path, y)
    return x_path, y_path, n * 7 // 8


def _child(mode: str, x_path: Path, y_path: Path, n_train: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, str(x_path), str(y_path), str(n_train)],
                          capture_output=True, text=True, env=env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_memory_mapped_training_stays_under_the_cap(tmp_path):
    x_path, y_path, n_train = _write_data(tmp_path)
    assert x_path.stat().st_size > CAP_MB * 2**20
    mapped = _child("mapped", x_path, y_path, n_train)
    assert mapped["growth_mb"] < CAP_MB, mapped
    assert min(mapped["acc"][-1]) > 0.5, mapped  # it trained on the data, not on nothing
    loaded = _child("memory", x_path, y_path, n_train)  # the same run with the data loaded: the cap catches it
    assert loaded["growth_mb"] > DATA_MB, loaded
    assert loaded["acc"] == mapped["acc"]  # the same numbers either way


def test_mapped_rows_index_like_a_tensor(tmp_path):
    data = np.arange(6 * 2 * 3, dtype=np.uint8).reshape(6, 2, 3)
    np.save(tmp_path / "a.npy", data)
    rows, ref = open_mapped(tmp_path / "a.npy"), torch.from_numpy(data)
    sub, ref_sub = rows.rows(np.array([5, 1, 3])), ref[[5, 1, 3]]
    assert len(rows) == 6 and rows.shape == ref.shape and rows.dtype == torch.uint8 and rows.dim() == 3
    idx = torch.tensor([2, 0, 2])
    for a, b in ((rows, ref), (sub, ref_sub)):
        assert torch.equal(a[idx], b[idx])
        assert torch.equal(a[1:3], b[1:3]) and torch.equal(a[-1], b[-1]) and torch.equal(a[0], b[0])
        assert torch.equal(a[np.array([True, False, True])], b[:3][torch.tensor([True, False, True])])
    got = rows[idx]
    got += 1  # a fresh, writable tensor: the file is untouched
    assert np.array_equal(np.load(tmp_path / "a.npy"), data)
    with pytest.raises(IndexError):
        sub[3]


def test_from_arrays_keeps_a_memmap_on_disk(tmp_path):
    data = np.random.default_rng(0).integers(0, 255, (40, 4, 4), dtype=np.uint8)
    np.save(tmp_path / "x.npy", data)
    y = np.arange(40) % 4
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    bench = from_arrays(mm[:32], y[:32], mm[32:], y[32:], tasks=2)
    assert bench.info["storage"] == "memory-mapped"
    in_memory = from_arrays(data[:32], y[:32], data[32:], y[32:], tasks=2)
    for e, m in zip(bench.experiences, in_memory.experiences):
        assert isinstance(e.train_x, MappedRows) and isinstance(e.test_x, MappedRows)
        idx = torch.arange(e.num_train).flip(0)
        assert torch.equal(e.train_inputs(idx)[0], m.train_inputs(idx)[0])
        assert torch.equal(e.prepare(e.test_x[0:len(e.test_y)]), m.prepare(m.test_x))
