"""Benchmarks from a user's own data: arrays, Datasets, Hugging Face datasets and image folders."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from processes import env, retain
from retain.benchmarks import BENCHMARKS, from_arrays, from_dataset, from_hf, make_benchmark
from retain.benchmarks.registry import TRAINING_DEFAULTS
from retain.data.mapped import MappedRows
from retain.errors import ConfigError, DataError, RetainError

ROOT = Path(__file__).resolve().parents[1]


def _images(n: int = 200, classes: int = 10, side: int = 6, seed: int = 0):
    """uint8 N x H x W x C images, a bright square per class (learnable), and labels."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.integers(0, 80, (n, side, side, 3), dtype=np.uint8)
    for c in range(classes):
        r, q = divmod(c, 3)
        x[y == c, r * 2:r * 2 + 2, q * 2:q * 2 + 2] = 255
    return x, y


def _split(x, y):
    return x[:160], y[:160], x[160:], y[160:]


# --- arrays -------------------------------------------------------------------------------------


def test_class_split_by_task_count_keeps_uint8_and_goes_channels_first():
    x, y = _images()
    bench = from_arrays(*_split(x, y), tasks=5)
    assert (bench.scenario, bench.num_classes, bench.input_shape, len(bench)) == ("class-il", 10, (3, 6, 6), 5)
    e = bench.experiences[1]
    assert e.classes == (2, 3) and e.train_x.dtype == torch.uint8
    assert set(e.train_y.tolist()) == {2, 3} and set(e.test_y.tolist()) == {2, 3}
    assert e.num_train == 32
    batch = e.prepare(e.train_x[:4])  # N x H x W x C uint8 -> N x C x H x W floats in [0, 1]
    ref = torch.from_numpy(x[y == 2][:1]).permute(0, 3, 1, 2).float() / 255
    assert batch.shape == (4, 3, 6, 6) and torch.allclose(batch[:1], ref)
    uneven = from_arrays(*_split(x, y), tasks=3)  # 10 classes into 3 tasks: 4, 3, 3
    assert [e.classes for e in uneven.experiences] == [(0, 1, 2, 3), (4, 5, 6), (7, 8, 9)]
    assert len(from_arrays(*_split(x, y)).experiences) == 5  # default: two classes a task


def test_explicit_class_order_flat_or_nested_and_label_values():
    x, y = _images()
    y = y * 10 + 3  # labels 3, 13, ..., 93: mapped to 0..9, class_order names the originals
    bench = from_arrays(*_split(x, y), class_order=[93, 3, 13, 83, 23, 73, 33, 63, 43, 53], tasks=2,
                        scenario="task-il")
    assert bench.scenario == "task-il" and bench.info["label_values"] == list(range(3, 100, 10))
    assert bench.info["class_groups"] == [[93, 3, 13, 83, 23], [73, 33, 63, 43, 53]]
    assert bench.experiences[0].classes == (9, 0, 1, 8, 2)
    nested = from_arrays(*_split(x, y), class_order=[[53], [3, 13, 23], [33, 43, 63, 73, 83, 93]])
    assert [len(e.classes) for e in nested.experiences] == [1, 3, 6]
    a = from_arrays(*_split(x, y), tasks=5, shuffle_classes=True, seed=4).info["class_groups"]
    assert a == from_arrays(*_split(x, y), tasks=5, shuffle_classes=True, seed=4).info["class_groups"]
    assert a != from_arrays(*_split(x, y), tasks=5, shuffle_classes=True, seed=5).info["class_groups"]


def test_domain_split_one_task_per_domain_and_task_il_blocks():
    x, y = _images(240)
    dom = np.array(["night", "day", "fog"])[np.arange(240) // 7 % 3]
    bench = from_arrays(x[:180], y[:180], x[180:], y[180:], domains=(dom[:180], dom[180:]))
    assert bench.scenario == "domain-il" and bench.num_classes == 10
    assert bench.info["domains"] == ["day", "fog", "night"]
    for e, d in zip(bench.experiences, bench.info["domains"]):
        assert e.num_train == int((dom[:180] == d).sum()) and e.classes == tuple(range(10))
    til = from_arrays(x[:180], y[:180], x[180:], y[180:], domains=(dom[:180], dom[180:]), scenario="task-il")
    assert til.num_classes == 30 and til.experiences[2].classes == tuple(range(20, 30))
    assert set(til.experiences[2].train_y.tolist()) <= set(range(20, 30))


def test_instance_stream_deals_every_class_into_every_task():
    x, y = _images(400)
    bench = from_arrays(*_split(x, y)[:2], x[300:], y[300:], stream="instance", tasks=4, seed=3)
    sizes = [e.num_train for e in bench.experiences]
    assert bench.scenario == "domain-il" and sum(sizes) == 160 and max(sizes) - min(sizes) <= 10
    for e in bench.experiences:
        assert set(e.train_y.tolist()) == set(range(10)) and e.classes == tuple(range(10))
    rows = torch.cat([e.train_x.reshape(e.num_train, -1) for e in bench.experiences])
    assert len(torch.unique(rows, dim=0)) == 160  # every sample once (the noise makes rows distinct)
    again = from_arrays(*_split(x, y)[:2], x[300:], y[300:], stream="instance", tasks=4, seed=3)
    other = from_arrays(*_split(x, y)[:2], x[300:], y[300:], stream="instance", tasks=4, seed=4)
    assert torch.equal(again.experiences[0].train_x, bench.experiences[0].train_x)
    assert not torch.equal(other.experiences[0].train_x, bench.experiences[0].train_x)


def test_float_features_and_tensors():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(100, 7, generator=g), torch.arange(100) % 4
    bench = from_arrays(x[:80], y[:80], x[80:], y[80:], tasks=2)
    e = bench.experiences[0]
    assert bench.input_shape == (7,) and torch.equal(e.prepare(e.train_x), x[:80][(y[:80] < 2)])
    gray = from_arrays(np.zeros((20, 5, 5), np.uint8), np.arange(20) % 2, np.zeros((4, 5, 5), np.uint8),
                       np.arange(4) % 2, tasks=1)
    assert gray.input_shape == (1, 5, 5)


BAD = [
    ("mismatched lengths", dict(train_y=np.arange(159) % 10), "train_x has 160 samples but train_y has 159"),
    ("float labels", dict(train_y=np.arange(160) / 2.0), "train_y must hold integer labels, got float64"),
    ("2-D labels", dict(test_y=np.zeros((40, 2), np.int64)), "test_y must be one label per sample"),
    ("integer inputs", dict(train_x=np.zeros((160, 6), np.int64)), "train_x must hold uint8 images or float features"),
    ("a list", dict(train_x=[[0.0]] * 160), "train_x must be a numpy array or a torch tensor, got list"),
    ("one axis", dict(train_x=np.zeros(160, np.float32)), "train_x must be N x D features"),
    ("five axes", dict(train_x=np.zeros((160, 1, 2, 2, 2), np.uint8)), "got 5 axes"),
    ("no channel axis", dict(train_x=np.zeros((160, 5, 6, 7), np.uint8)), "neither its axis 1 nor its last axis"),
    ("shapes differ", dict(test_x=np.zeros((40, 6, 6, 1), np.uint8)), "test_x samples have shape (6, 6, 1)"),
    ("dtypes differ", dict(test_x=np.zeros((40, 6, 6, 3), np.float32)), "train_x is torch.uint8 but test_x"),
    ("unseen test label", dict(test_y=np.full(40, 11)), "test_y has label(s) 11 that train_y lacks"),
    ("tasks > classes", dict(tasks=11), "tasks (11) must not exceed the number of classes (10)"),
    ("tasks zero", dict(tasks=0), "--tasks must be a positive integer"),
    ("class not in data", dict(class_order=[0, 1, 2, 3, 4, 5, 6, 7, 8, 12]), "class_order names class(es) 12"),
    ("class twice", dict(class_order=[0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9]), "lists class(es) 1 more than once"),
    ("class left out", dict(class_order=[[0, 1], [2, 3]]), "class_order leaves out class(es) 4, 5, 6"),
    ("class names", dict(class_order=["cat", "dog"]), "class_order must list integer labels"),
    ("nested vs tasks", dict(class_order=[list(range(5)), list(range(5, 10))], tasks=3), "tasks (3) differs"),
    ("scenario", dict(scenario="domain-il"), "a split by classes runs as class-il or task-il"),
    ("stream", dict(stream="online"), "stream must be 'instance'"),
    ("stream + order", dict(stream="instance", class_order=list(range(10))), "an instance stream keeps every"),
    ("stream too long", dict(stream="instance", tasks=17), "has 16 training samples, fewer than the 17 tasks"),
    ("domains not a pair", dict(domains=np.zeros(160)), "domains must be a pair"),
    ("domains length", dict(domains=(np.zeros(150), np.zeros(40))), "one per train sample (160)"),
    ("domains differ", dict(domains=(np.arange(160) % 2, np.zeros(40, int))), "the test domains (0) differ"),
    ("domains + tasks", dict(domains=(np.arange(160) % 2, np.arange(40) % 2), tasks=3), "number of domains (2)"),
]


@pytest.mark.parametrize("case,change,message", BAD, ids=[c[0] for c in BAD])
def test_bad_input_is_one_clear_line(case, change, message):
    x, y = _images()
    args = dict(zip(("train_x", "train_y", "test_x", "test_y"), _split(x, y)))
    split = {k: v for k, v in change.items() if k not in args}
    args.update({k: v for k, v in change.items() if k in args})
    with pytest.raises(ConfigError) as info:
        from_arrays(args["train_x"], args["train_y"], args["test_x"], args["test_y"], **split)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_task_without_test_samples_is_refused():
    x, y = _images()
    with pytest.raises(ConfigError, match="no sample of task 5's classes 8, 9"):
        from_arrays(x[:160], y[:160], x[160:][y[160:] < 8], y[160:][y[160:] < 8], tasks=5)


def test_trains_end_to_end_through_the_registry():
    from retain.benchmarks import register_benchmark
    from retain.config.run import RunConfig
    from retain.training.loop import run_experiment

    x, y = _images(400)

    @register_benchmark("test-byo-arrays", epochs=3, batch_size=16, lr=0.1)
    def _bench(*, tasks=None, seed=0, scenario=None, data_dir=None):
        return from_arrays(x[:320], y[:320], x[320:], y[320:], tasks=tasks or 5, scenario=scenario, seed=seed)

    for scenario in ("class-il", "task-il"):
        r = run_experiment(RunConfig(benchmark="test-byo-arrays", strategy="naive", scenario=scenario))
        assert r.scenario == scenario and len(r.acc_matrix) == 5
        assert r.acc_matrix[0][0] > 0.9  # the squares are learnt
        if scenario == "task-il":
            assert min(r.acc_matrix[-1][:-1]) > 0.9  # masking to each task's classes keeps old tasks apart


# --- torch Datasets and Hugging Face ----------------------------------------------------------


class _Pairs(torch.utils.data.Dataset):
    def __init__(self, x, y, pil: bool = False):
        self.x, self.y, self.pil = x, y, pil

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        if self.pil:
            from PIL import Image

            return Image.fromarray(self.x[i]), np.int64(self.y[i])
        return torch.from_numpy(self.x[i]).permute(2, 0, 1), torch.tensor(self.y[i])


def _same(a, b):
    assert [e.classes for e in a.experiences] == [e.classes for e in b.experiences]
    for ea, eb in zip(a.experiences, b.experiences):
        assert torch.equal(ea.prepare(ea.train_x[:]), eb.prepare(eb.train_x[:]))
        assert torch.equal(ea.test_y, eb.test_y)


def test_dataset_through_a_dataloader_equals_the_arrays(tmp_path):
    x, y = _images()
    ref = from_arrays(*_split(x, y), tasks=5)
    chw = from_dataset(_Pairs(x[:160], y[:160]), _Pairs(x[160:], y[160:]), tasks=5, chunk_size=64)
    assert chw.input_shape == (3, 6, 6) and chw.info["storage"] == "memory"
    _same(chw, ref)
    pil = from_dataset(_Pairs(x[:160], y[:160], pil=True), _Pairs(x[160:], y[160:], pil=True), tasks=5,
                       num_workers=1, cache_dir=tmp_path, name="pil")
    assert pil.info["storage"] == "memory-mapped" and isinstance(pil.experiences[0].train_x, MappedRows)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pil-test.npy", "pil-train.npy"]
    _same(pil, ref)


def test_dataset_bad_items_are_one_line():
    class Bad(torch.utils.data.Dataset):
        def __init__(self, item, n=4):
            self.item, self.n = item, n

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            return self.item(i)

    good = _Pairs(*_images(8)[:2])
    cases = [(Bad(lambda i: torch.zeros(3)), "sample 0 is not an (input, label) pair"),
             (Bad(lambda i: (torch.zeros(3), 0.5)), "sample 0 has label 0.5; labels must be integers"),
             (Bad(lambda i: (torch.zeros(3 + (i == 2)), 0)), "sample 2 has shape (4,), sample 0 (3,)"),
             (Bad(lambda i: (torch.zeros(3, dtype=torch.int32), 0)), "inputs must be uint8 images or float"),
             (Bad(None, n=0), "the dataset is empty")]
    for ds, message in cases:
        with pytest.raises(ConfigError, match=re.escape(message)):
            from_dataset(ds, good)
    with pytest.raises(ConfigError, match="map-style Dataset with len"):
        from_dataset(iter([]), good)


def _hf_dict(x, y):
    datasets = pytest.importorskip("datasets", reason="the Hugging Face datasets package is not installed")
    from PIL import Image

    names = [f"kind{i}" for i in range(10)]
    features = datasets.Features({"img": datasets.Image(), "kind": datasets.ClassLabel(names=names)})
    part = lambda a, b: datasets.Dataset.from_dict(  # noqa: E731
        {"img": [Image.fromarray(v) for v in a], "kind": b.tolist()}, features=features)
    return datasets.DatasetDict(train=part(x[:160], y[:160]), test=part(x[160:], y[160:]))


def test_hugging_face_dataset_dict():
    x, y = _images()
    hf = _hf_dict(x, y)
    bench = from_hf(hf, image_key="img", label_key="kind", tasks=5)
    assert bench.info["class_names"] == [f"kind{i}" for i in range(10)] and bench.info["source"] == "huggingface"
    _same(bench, from_arrays(*_split(x, y), tasks=5))
    gray = from_hf(hf, image_key="img", label_key="kind", tasks=2, size=3, mode="L")
    assert gray.input_shape == (1, 3, 3)
    with pytest.raises(ConfigError, match="no column 'image'"):
        from_hf(hf, tasks=5)
    with pytest.raises(ConfigError, match="no split 'validation'"):
        from_hf(hf, image_key="img", label_key="kind", test_split="validation")


def test_hugging_face_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # what an environment without it does on import
    with pytest.raises(ConfigError, match=r"from_hf needs the Hugging Face datasets package.*retain\[hf\]"):
        from_hf({})


# --- folders of images --------------------------------------------------------------------------


def _png_folder(root: Path, *, classes: int = 10, train: int = 60, test: int | None = 10, side: int = 8,
                gray: bool = False) -> Path:
    """``root/train/<class>/*.png`` and ``root/test/...`` (``test=None``: ``root/<class>/`` only)."""
    from PIL import Image

    x, y = _images(classes * (train + (test or 0)), classes, side)
    for i, (img, c) in enumerate(zip(x, y)):
        k = i // classes
        part = root / ("train" if k < train else "test") / f"class{c}" if test is not None else root / f"class{c}"
        part.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[..., 0] if gray else img).save(part / f"{i:04d}.png")
    return root


def test_folder_benchmark_is_registered_on_demand_with_defaults(tmp_path):
    root = _png_folder(tmp_path / "imgs", classes=4, train=5, test=2)
    name = f"folder:{root}"
    assert name in BENCHMARKS and TRAINING_DEFAULTS[name]["epochs"] == 5
    bench = make_benchmark(name, tasks=2, seed=0, scenario=None, data_dir=None)
    assert bench.name == name and bench.info["class_names"] == ["class0", "class1", "class2", "class3"]
    assert bench.info["folder_split"] == "folders" and bench.input_shape == (3, 8, 8)
    assert [e.num_train for e in bench.experiences] == [10, 10] and isinstance(bench.experiences[0].train_x, MappedRows)
    cache = Path(bench.info["stored"])
    assert cache.parent == root / ".retain-cache" and cache.name.startswith("images-8x8-RGB-")
    from PIL import Image

    first = np.array(Image.open(root / "train" / "class0" / "0000.png")).transpose(2, 0, 1)
    assert torch.equal(bench.experiences[0].train_x[0], torch.from_numpy(first))
    memory = make_benchmark(name, tasks=2, seed=0, scenario=None, data_dir=None, cache=False)
    _same(memory, bench)
    assert memory.info["stored"] == "memory" and isinstance(memory.experiences[0].train_x, torch.Tensor)


def test_folder_cache_is_reused_and_redone_when_a_file_changes(tmp_path):
    root = _png_folder(tmp_path / "imgs", classes=2, train=3, test=1)
    name = f"folder:{root}"
    first = Path(make_benchmark(name, tasks=1, seed=0, scenario=None, data_dir=None).info["stored"])
    stamp = first.stat().st_mtime_ns
    again = Path(make_benchmark(name, tasks=1, seed=0, scenario=None, data_dir=None).info["stored"])
    assert again == first and first.stat().st_mtime_ns == stamp  # mapped, not decoded again
    from PIL import Image

    Image.fromarray(np.full((8, 8, 3), 7, np.uint8)).save(root / "train" / "class1" / "0003.png")
    changed = make_benchmark(name, tasks=1, seed=0, scenario=None, data_dir=None)
    assert Path(changed.info["stored"]) != first and not first.exists()  # the stale file is removed
    assert int(changed.experiences[0].train_x[:].max()) == 255 and 7 in changed.experiences[0].train_x[:].unique()
    assert not list((root / ".retain-cache").glob("*.tmp"))


def test_folder_without_split_holds_out_a_fixed_fraction(tmp_path):
    root = _png_folder(tmp_path / "flat", classes=3, train=10, test=None, gray=True)
    bench = make_benchmark(f"folder:{root}", tasks=3, seed=0, scenario=None, data_dir=None, test_fraction=0.3,
                           size="4x5")
    assert bench.info["folder_split"] == "held-out" and bench.info["mode"] == "L"
    assert bench.input_shape == (1, 5, 4) and bench.info["size"] == "4x5"
    assert [(len(e.test_y), e.num_train) for e in bench.experiences] == [(3, 7)] * 3
    other_seed = make_benchmark(f"folder:{root}", tasks=3, seed=9, scenario=None, data_dir=None, test_fraction=0.3,
                                size="4x5")
    assert torch.equal(other_seed.experiences[0].test_x[:], bench.experiences[0].test_x[:])  # seed-independent


def test_folder_class_order_names_folders(tmp_path):
    root = _png_folder(tmp_path / "imgs", classes=4, train=3, test=1)
    bench = make_benchmark(f"folder:{root}", tasks=None, seed=0, scenario="task-il", data_dir=None,
                           class_order="class3,class1;class0;class2")
    assert bench.info["class_groups"] == [[3, 1], [0], [2]]
    with pytest.raises(ConfigError, match="class_order names 'dog', not a class folder"):
        make_benchmark(f"folder:{root}", tasks=2, seed=0, scenario=None, data_dir=None, class_order="dog,class1")


def test_folder_bad_data_names_what(tmp_path):
    root = _png_folder(tmp_path / "imgs", classes=2, train=2, test=1)
    (root / "train" / "class1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match=re.escape(str(root / "train" / "class1" / "broken.png"))):
        make_benchmark(f"folder:{root}", tasks=1, seed=0, scenario=None, data_dir=None)
    cases = [(tmp_path / "missing", "no such directory"), (tmp_path / "empty", "no class folders")]
    (tmp_path / "empty").mkdir()
    lone = _png_folder(tmp_path / "lone", classes=2, train=1, test=None)
    cases.append((lone, "class folder 'class0' has 1 image"))
    odd = _png_folder(tmp_path / "odd", classes=2, train=2, test=1)
    (odd / "test" / "class1").rename(odd / "test" / "class9")
    cases.append((odd, "'class1' is in only one"))
    for path, message in cases:
        with pytest.raises(RetainError, match=re.escape(message)):
            make_benchmark(f"folder:{path}", tasks=1, seed=0, scenario=None, data_dir=None)
    for option, message in ((dict(size="big"), "size must be"), (dict(mode="CMYK"), "mode must be RGB or L"),
                            (dict(test_fraction=0.5), "test_fraction is for a folder without")):
        with pytest.raises(ConfigError, match=message):
            make_benchmark(f"folder:{root}", tasks=1, seed=0, scenario=None, data_dir=None, **option)


def test_folder_with_a_directory_where_the_cache_file_goes_is_one_line(tmp_path):
    root = _png_folder(tmp_path / "imgs", classes=2, train=2, test=1)
    name = f"folder:{root}"
    cache = Path(make_benchmark(name, tasks=1, seed=0, scenario=None, data_dir=None).info["stored"])
    cache.unlink()
    cache.mkdir()
    with pytest.raises(DataError, match=re.escape(f"{cache}: not a file, where the decoded images' cache file goes")):
        make_benchmark(name, tasks=1, seed=0, scenario=None, data_dir=None)
    assert not list(cache.parent.glob("*.tmp"))


def test_a_huge_first_image_is_refused_before_anything_is_decoded_or_cached(tmp_path):
    from PIL import Image

    from retain.data.folder import MAX_SIDE

    root = _png_folder(tmp_path / "imgs", classes=2, train=2, test=1)
    first = root / "train" / "class0" / "0000.png"
    Image.fromarray(np.zeros((2, MAX_SIDE + 1, 3), np.uint8)).save(first)  # tiny file, one side too long
    with pytest.raises(ConfigError, match=re.escape(f"{first}: the first image is {MAX_SIDE + 1}x2, more than")):
        make_benchmark(f"folder:{root}", tasks=1, seed=0, scenario=None, data_dir=None)
    assert not (root / ".retain-cache").exists()  # nothing written into the data folder
    bench = make_benchmark(f"folder:{root}", tasks=1, seed=0, scenario=None, data_dir=None, size=8)
    assert bench.input_shape == (3, 8, 8)  # with a size given it is resized like the rest


def test_folder_cache_falls_back_to_the_user_cache(tmp_path, monkeypatch):
    from retain.data import folder

    root = _png_folder(tmp_path / "imgs", classes=2, train=2, test=1)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home-cache"))
    real_access = os.access
    monkeypatch.setattr(folder.os, "access", lambda p, mode: False if Path(p).parent == root else real_access(p, mode))
    bench = make_benchmark(f"folder:{root}", tasks=1, seed=0, scenario=None, data_dir=None)
    assert Path(bench.info["stored"]).is_relative_to(tmp_path / "home-cache" / "retain" / "folders")


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(retain(*args), capture_output=True, text=True, env=env(), cwd=cwd, timeout=300)


@pytest.mark.slow
def test_folder_through_the_cli(tmp_path):
    root = _png_folder(tmp_path / "pngs")
    out = tmp_path / "out"
    proc = _run("run", "--benchmark", f"folder:{root}", "--tasks", "5", "--scenario", "class-il", "--strategy", "er",
                "--seeds", "1", "--out", str(out), "--quiet", "--no-report", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run,) = json.loads((out / "summary.json").read_text())
    assert run["benchmark"] == f"folder:{root}" and len(run["acc_matrix"]) == 5 and len(run["acc_matrix"][0]) == 5
    assert run["metrics"]["avg_acc"] > 0.5  # ER keeps the squares of earlier tasks
    bad = _run("run", "--benchmark", "folder:/nonexistent", "--strategy", "naive", "--seeds", "1",
               "--out", str(tmp_path / "bad"), "--quiet", "--no-report", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip() == "retain: error: /nonexistent: no such directory"


# --- docs/byo-data.md ---------------------------------------------------------------------------


@pytest.mark.slow
def test_docs_examples(tmp_path, monkeypatch):
    """Every ```python block of docs/byo-data.md in order in one namespace, then every ```console
    command (with an output folder added), all in one working folder."""
    pytest.importorskip("datasets", reason="the docs' Hugging Face example needs the datasets package")
    text = (ROOT / "docs" / "byo-data.md").read_text()
    blocks = re.findall(r"```(python|console)\n(.*?)```", text, re.DOTALL)
    assert [kind for kind, _ in blocks].count("console") == 1 and len(blocks) >= 7
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "byo_docs"}
    commands = []
    for kind, body in blocks:
        if kind == "python":
            exec(compile(body, "docs/byo-data.md", "exec"), namespace)  # noqa: S102 - our own docs
        else:
            commands += [line for line in body.splitlines() if line.startswith("retain ")]
    assert len(commands) == 2
    for i, line in enumerate(commands):
        out = tmp_path / f"out{i}"
        proc = _run(*shlex.split(line)[1:], "--out", str(out), "--quiet", "--no-report", cwd=tmp_path)
        assert proc.returncode == 0, (line, proc.stderr)
        (run,) = json.loads((out / "summary.json").read_text())
        assert len(run["acc_matrix"]) == (5 if i == 0 else 3)
