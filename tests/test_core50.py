"""CORe50 reader and the NI / NC benchmarks on generated files in the official layout."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from retain.benchmarks import make_benchmark
from retain.config.run import RunConfig
from retain.data.core50 import TEST_SESSIONS, load_core50, read_images
from retain.errors import ConfigError, DataError
from retain.training.loop import run_experiment
from vision_fixtures import write_core50, write_py2


@pytest.fixture(scope="module")
def core50(tmp_path_factory):
    return write_core50(tmp_path_factory.mktemp("core50")).parent


def _bench(name, root, **kw):
    return make_benchmark(name, data_dir=root, verify=False, **kw)


def test_ni_is_eight_sessions_of_all_objects_tested_on_sessions_3_7_10(core50):
    b = _bench("core50-ni", core50, run=1)
    assert len(b) == 8 and b.scenario == "domain-il" and b.num_classes == 50 and b.input_shape == (3, 32, 32)
    _, sessions, batches = load_core50(str((core50 / "core50").resolve()), "ni", 1, 32, False)
    train_sessions = [set(sessions[idx].tolist()) for idx, _ in batches[:-1]]
    assert all(len(s) == 1 for s in train_sessions)
    assert sorted(s.pop() for s in train_sessions) == [1, 2, 4, 5, 6, 8, 9, 11]
    assert set(sessions[batches[-1][0]].tolist()) == set(TEST_SESSIONS)
    assert all(set(e.train_y.tolist()) == set(range(50)) for e in b.experiences)
    assert all(e.test_x.data_ptr() == b.experiences[0].test_x.data_ptr() for e in b.experiences)
    cat = _bench("core50-ni", core50, labels="category")
    plain = _bench("core50-ni", core50)
    assert cat.num_classes == 10 and torch.equal(cat.experiences[0].train_y, plain.experiences[0].train_y // 5)
    assert len(_bench("core50-ni", core50, test_every=3).experiences[0].test_y) == 50


def test_nc_is_ten_then_five_new_objects_a_batch(core50):
    b = _bench("core50-nc", core50)
    assert len(b) == 9 and b.scenario == "class-il" and b.num_classes == 50
    assert [len(e.classes) for e in b.experiences] == [10] + [5] * 8
    assert sorted(c for e in b.experiences for c in e.classes) == list(range(50))
    assert all(set(e.test_y.tolist()) == set(e.classes) == set(e.train_y.tolist()) for e in b.experiences)
    assert _bench("core50-nc", core50, scenario="task-il").scenario == "task-il"
    for kw, msg in (({"tasks": 5}, "has 9 experiences"), ({"scenario": "domain-il"}, "scenario must be one of"),
                    ({"run": 10}, "run must be an integer 0..9"), ({"image_size": 48}, "32, 64 or 128")):
        with pytest.raises((ConfigError, DataError), match=msg):
            _bench("core50-nc", core50, **kw)


def test_downsampling_is_a_4x4_box_average_and_native_size_keeps_pixels(core50):
    raw = np.load(core50 / "core50" / "core50_imgs.npz")["x"][:3]
    small = read_images(core50 / "core50" / "core50_imgs.npz", 32)[:3]
    expected = raw.reshape(3, 32, 4, 32, 4, 3).mean(axis=(2, 4)).round().transpose(0, 3, 1, 2)
    assert np.abs(small.astype(int) - expected.astype(int)).max() <= 1  # float rounding at .5
    full = _bench("core50-nc", core50, image_size=128).experiences[0]
    assert full.train_x.shape[1:] == (3, 128, 128)
    assert (core50 / "core50" / "core50_imgs_32px.npy").is_file()


def test_truncated_array_names_the_file_and_caches_nothing(tmp_path):
    folder = write_core50(tmp_path)
    npz = folder / "core50_imgs.npz"
    npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
    with pytest.raises(DataError, match=r"core50_imgs.npz.*(truncated|corrupt)"):
        _bench("core50-ni", tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["LUP.pkl", "core50_imgs.npz", "labels.pkl", "paths.pkl"]


def test_compressed_array_and_bad_tables(tmp_path):
    folder = write_core50(tmp_path / "a", compressed=True)
    assert len(_bench("core50-nc", tmp_path / "a")) == 9
    lup = pickle.loads((folder / "LUP.pkl").read_bytes(), encoding="latin1")
    lup["ni"][0] = lup["ni"][0][:5]
    write_py2(folder / "LUP.pkl", {k.encode(): v for k, v in lup.items()})
    with pytest.raises(DataError, match="ni run 0 has 5 index and 9 label batches"):
        _bench("core50-ni", tmp_path / "a")
    (folder / "labels.pkl").write_bytes(pickle.dumps(print, protocol=2))
    with pytest.raises(DataError, match=r"labels.pkl: refuses to load global (__)?builtin(s|__)\.print"):
        _bench("core50-nc", tmp_path / "a", run=1)
    with pytest.raises(DataError, match="core50_imgs.npz not found"):
        _bench("core50-ni", tmp_path / "nowhere")


@pytest.mark.slow
def test_naive_runs_core50_nc_with_a_small_resnet(core50):
    cfg = RunConfig(benchmark="core50-nc", strategy="naive", backbone="resnet18-reduced", backbone_options={"nf": 2},
                    data_dir=str(core50), benchmark_options={"verify": False, "test_every": 3}, batch_size=64)
    result = run_experiment(cfg)
    assert len(result.acc_matrix) == 9 and result.acc_matrix[-1][-1] >= 0.0
