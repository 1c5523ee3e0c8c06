"""CIFAR readers on generated files in the official layout, the restricted unpickler, batch
augmentation, and the Split CIFAR benchmarks (every registered strategy, task-IL and class-IL)."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from retain.benchmarks import make_benchmark
from retain.config.run import RunConfig
from retain.data.augment import RandomCropFlip
from retain.data.cifar import load_cifar10, load_cifar100, read_batch
from retain.data.safe_pickle import safe_load, safe_loads
from retain.errors import ConfigError, DataError
from retain.strategies import STRATEGIES
from retain.training.loop import run_experiment
from vision_fixtures import py2_dumps, write_cifar10, write_cifar100


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickle_that_calls_os_system_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": _Evil(marker)}, protocol=2))
    with pytest.raises(DataError, match=r"data_batch_1.*system"):
        safe_load(path)
    assert not marker.exists()
    with pytest.raises(DataError, match="builtins.eval"):
        safe_loads(b"cbuiltins\neval\n(S'1+1'\ntR.", "x.pkl")


@pytest.mark.parametrize("kind", [b"bytearray", b"bytes"])
def test_a_tiny_pickle_asking_for_gigabytes_is_refused_before_allocating(tmp_path, kind):
    import tracemalloc

    # builtins.<kind>(2**31) in 30-odd bytes: GLOBAL, LONG1 2**31, TUPLE1, REDUCE, STOP
    data = b"\x80\x02cbuiltins\n" + kind + b"\n\x8a\x05\x00\x00\x00\x80\x00\x85R."
    path = tmp_path / "data_batch_1"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=f"{path}: cannot unpickle.*{kind.decode()}\\(2147483648\\) asks for"):
            read_batch(path, "labels")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20, f"{peak / 2**20:.0f} MiB allocated before the refusal"
    plain = {"k": bytearray(b"abc"), "e": b""}
    assert safe_loads(pickle.dumps(plain, protocol=2)) == plain  # contents, not counts, still load


def test_python2_layout_reads_with_channel_planes(tmp_path):
    folder = write_cifar10(tmp_path, per_class=2)
    raw = pickle.loads((folder / "data_batch_3").read_bytes(), encoding="latin1")
    x, y, xt, yt = load_cifar10(tmp_path, verify=False)
    assert x.shape == (100, 3, 32, 32) and x.dtype == torch.uint8 and xt.shape == (20, 3, 32, 32)
    assert y.dtype == torch.int64 and sorted(y.unique().tolist()) == list(range(10))
    row = raw["data"][5]  # 1024 red values, then green, then blue, each row-major 32 x 32
    assert torch.equal(x[40 + 5, 1], torch.from_numpy(row[1024:2048].reshape(32, 32)))
    assert int(y[40 + 5]) == raw["labels"][5]
    write_cifar100(tmp_path, per_class=2)
    x100, y100, _, yt100 = load_cifar100(tmp_path, verify=False)
    assert x100.shape == (200, 3, 32, 32) and y100.max() == 99 and yt100.shape == (100,)
    _, coarse, _, _ = load_cifar100(tmp_path, label="coarse", verify=False)
    assert torch.equal(coarse, y100 // 5)


def test_python3_pickle_with_bytes_keys_also_reads(tmp_path):
    d = {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 3]}
    (tmp_path / "b").write_bytes(pickle.dumps(d, protocol=4))
    x, labels = read_batch(tmp_path / "b", "labels")
    assert x.shape == (4, 3, 32, 32) and labels["labels"].tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[: len(b) // 2], "truncated or corrupt"),
    (lambda b: b"\x00" * 64, "corrupt|truncated"),
])
def test_truncated_or_corrupt_batch_names_the_file(tmp_path, damage, message):
    folder = write_cifar10(tmp_path)
    target = folder / "data_batch_2"
    target.write_bytes(damage(target.read_bytes()))
    with pytest.raises(DataError, match=rf"data_batch_2.*({message})"):
        load_cifar10(tmp_path, verify=False)


def test_wrong_shape_missing_key_and_checksum(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(py2_dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(DataError, match=r"bad: 'data' must be N x 3072 uint8, got \(2, 100\)"):
        read_batch(bad, "labels")
    bad.write_bytes(py2_dumps({b"data": np.zeros((2, 3072), np.uint8)}))
    with pytest.raises(DataError, match="key 'labels' missing"):
        read_batch(bad, "labels")
    write_cifar10(tmp_path / "c10")
    with pytest.raises(DataError, match="checksum mismatch.*md5"):
        load_cifar10(tmp_path / "c10")  # generated files are not the official ones
    with pytest.raises(DataError, match="cifar-100-python/ not found"):
        load_cifar100(tmp_path / "c10")


def test_split_cifar100_class_order_is_seeded_and_tasks_configurable(tmp_path):
    write_cifar100(tmp_path)
    make = lambda **kw: make_benchmark("split-cifar100", data_dir=tmp_path, verify=False, **kw)
    b = make(seed=0)
    assert len(b) == 10 and b.input_shape == (3, 32, 32) and b.num_classes == 100 and b.scenario == "class-il"
    assert sorted(c for e in b.experiences for c in e.classes) == list(range(100))
    assert all(set(e.train_y.tolist()) == set(e.classes) for e in b.experiences)
    assert b.experiences[0].train_x.dtype == torch.uint8
    assert [e.classes for e in make(seed=0).experiences] == [e.classes for e in b.experiences]
    assert [e.classes for e in make(seed=1).experiences] != [e.classes for e in b.experiences]
    assert b.info["class_order"] != list(range(100))
    assert [len(e.classes) for e in make(tasks=20, scenario="task-il").experiences] == [5] * 20
    with pytest.raises(ConfigError, match="--tasks must be one of"):
        make(tasks=7)
    c10 = write_cifar10(tmp_path) and make_benchmark("split-cifar10", data_dir=tmp_path, verify=False)
    assert [len(e.classes) for e in c10.experiences] == [2] * 5


def test_train_batches_are_augmented_and_test_batches_are_not(tmp_path):
    write_cifar100(tmp_path)
    e = make_benchmark("split-cifar100", data_dir=tmp_path, verify=False).experiences[0]
    x = e.train_x[:16]
    plain, train = e.prepare(x), e.prepare(x, train=True)
    assert torch.equal(plain, e.prepare(x)) and not torch.equal(plain, train)
    assert abs(float(plain.mean())) < 0.5  # normalised
    off = make_benchmark("split-cifar100", data_dir=tmp_path, verify=False, augment=False).experiences[0]
    assert torch.equal(off.prepare(x, train=True), off.prepare(x))


def test_random_crop_flip_is_a_seeded_shifted_window():
    x = torch.randint(0, 256, (32, 3, 8, 8), dtype=torch.uint8)
    aug = lambda seed, **kw: RandomCropFlip(seed=seed, **kw)(x)
    assert torch.equal(aug(3, padding=2), aug(3, padding=2)) and not torch.equal(aug(3, padding=2), aug(4, padding=2))
    assert torch.equal(aug(0, padding=0, flip_p=1.0), x.flip(3))
    assert torch.equal(aug(0, padding=0, flip_p=0.0), x)
    out = RandomCropFlip(padding=2, flip_p=0.0, seed=1, fill=7)(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = torch.full((32, 3, 12, 12), 7, dtype=torch.uint8)
    padded[:, :, 2:10, 2:10] = x
    for i in range(32):  # each output is some window of the padded image
        windows = [padded[i, :, r:r + 8, c:c + 8] for r in range(5) for c in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)
    assert (out == 7).any()  # some crops show the border


#: Strategies that need another backbone than a convolutional network.
_PROMPTABLE = ("hf-vit", {"dim": 16, "depth": 1, "heads": 2, "patch": 8})  # prompt methods need a ViT read in steps
_BACKBONE_FOR = {"online-lora": ("vit-tiny", {"dim": 16, "depth": 1, "heads": 2, "patch": 8}),
                 "l2p": _PROMPTABLE, "coda-prompt": _PROMPTABLE}


@pytest.fixture(scope="module")
def tiny_cifar100(tmp_path_factory):
    root = tmp_path_factory.mktemp("c100")
    write_cifar100(root, per_class=1, test_per_class=1)
    return str(root)


#: Known incompatibilities, reported to their owners; non-strict so a fix turns them green.
def _strategies():
    return STRATEGIES.names()


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["task-il", "class-il"])
@pytest.mark.parametrize("strategy", _strategies())
def test_every_strategy_runs_split_cifar100(tiny_cifar100, strategy, scenario):
    backbone, options = _BACKBONE_FOR.get(strategy, ("resnet18-reduced", {"nf": 2}))
    # The fixture has 100 training images: a buffer of 40 fills up and starts replacing entries.
    params = {f.name: 40 for f, _ in STRATEGIES.get(strategy).Config.fields() if f.name == "buffer_size"}
    cfg = RunConfig(benchmark="split-cifar100", strategy=strategy, tasks=2, scenario=scenario, backbone=backbone,
                    backbone_options=options, epochs=1, batch_size=32, data_dir=tiny_cifar100,
                    benchmark_options={"verify": False}, params=params)
    result = run_experiment(cfg)
    assert len(result.acc_matrix) == 2 and all(0.0 <= a <= 1.0 for row in result.acc_matrix for a in row)
    trained = [v for v in result.losses if v is not None]  # joint trains only at its last task
    assert trained and np.isfinite(trained).all()


def test_cli_run_on_files_that_are_not_official_fails_before_writing(tmp_path, capsys):
    from retain.cli.main import main

    write_cifar100(tmp_path / "data")
    rc = main(["run", "--benchmark", "split-cifar100", "--strategy", "naive", "--backbone", "resnet18-reduced",
               "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--quiet", "--seeds", "1"])
    assert rc == 2 and "checksum mismatch" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_augmented_runs_are_reproducible_from_the_seed(tiny_cifar100):
    cfg = lambda seed: RunConfig(benchmark="split-cifar100", strategy="naive", tasks=2, backbone="resnet18-reduced",
                                 backbone_options={"nf": 2}, epochs=1, batch_size=16, seed=seed,
                                 data_dir=tiny_cifar100, benchmark_options={"verify": False})
    a, b, c = run_experiment(cfg(0)), run_experiment(cfg(0)), run_experiment(cfg(1))
    assert a.acc_matrix == b.acc_matrix and a.losses == b.losses
    assert a.losses != c.losses
