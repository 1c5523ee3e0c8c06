"""Text streams: reading JSONL tasks, tokenisation and its cache, length bucketing, the text benchmarks'
scenarios, the pretrained text encoder (dynamic padding, modes) and the errors, on a tiny BERT the tests
save themselves. Every strategy on text is in tests/test_text_strategies.py; the real MiniLM-L6-v2 in
tests/test_text_real.py."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from retain.benchmarks import make_benchmark
from retain.benchmarks.base import bucketed
from retain.config.run import RunConfig
from retain.data.text import PAD, load_tokenizer, read_task, tokenise
from retain.errors import ConfigError, DataError
from retain.models import BACKBONES
from retain.training.loop import run_experiment


def _bench(tasks, tiny_bert, **options):
    return make_benchmark(f"text:{tasks}", tasks=None, seed=0, scenario=options.pop("scenario", None), data_dir=None,
                          tokenizer=str(tiny_bert), **options)


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "retain", *args], capture_output=True, text=True, cwd=cwd)


# ---- reading -------------------------------------------------------------------------------------
def test_a_task_reads_its_labels_in_the_declared_order(text_tasks):
    task = read_task(text_tasks / "news")
    assert task.labels == ["world", "sports", "business"]
    assert len(task.train.texts) == 40 and len(task.test.texts) == 20
    assert task.train.labels.tolist()[:3] == [0, 1, 2]


def test_a_bad_line_is_named_by_file_and_line(text_tasks):
    path = text_tasks / "news" / "train.jsonl"
    lines = path.read_text().splitlines()
    lines[6] = '{"text": "half an object'
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"news/train.jsonl:7: not a JSON object"):
        read_task(text_tasks / "news")


def test_a_label_outside_labels_json_is_refused_with_its_line(text_tasks):
    path = text_tasks / "reviews" / "test.jsonl"
    path.write_text(path.read_text() + json.dumps({"text": "w1", "label": "meh"}) + "\n")
    with pytest.raises(DataError, match=r"reviews/test.jsonl:21: label 'meh' is not one of"):
        read_task(text_tasks / "reviews")


# ---- tokenisation --------------------------------------------------------------------------------
def test_tokenisation_is_cached_and_read_back_identically(text_tasks, tiny_bert):
    split = read_task(text_tasks / "news").train
    tok, digest = load_tokenizer(str(tiny_bert))
    first = tokenise(split, tok, digest, 32)
    again = tokenise(split, tok, digest, 32)
    assert not first.cached and again.cached
    assert torch.equal(first.ids, again.ids) and torch.equal(first.lengths, again.lengths)
    assert first.ids.dtype == torch.int32 and first.ids.shape == (40, 32)
    # every row: [CLS] ... [SEP], then only padding
    for row, n in zip(first.ids, first.lengths):
        assert row[0] == tok.cls_token_id and row[n - 1] == tok.sep_token_id and (row[n:] == PAD).all()


def test_a_damaged_cache_file_is_made_again(text_tasks, tiny_bert, tmp_path):
    split = read_task(text_tasks / "news").train
    tok, digest = load_tokenizer(str(tiny_bert))
    good = tokenise(split, tok, digest, 32)
    for f in (tmp_path / "retain-cache" / "tokens").glob("*.npz"):
        f.write_bytes(b"not an npz")
    again = tokenise(split, tok, digest, 32)
    assert not again.cached and torch.equal(again.ids, good.ids)


def test_truncation_is_counted_per_text(text_tasks, tiny_bert):
    from text_fixtures import write_tasks

    write_tasks(text_tasks, long_every=5)  # every fifth text of 150 words
    split = read_task(text_tasks / "news").train
    tok, digest = load_tokenizer(str(tiny_bert))
    tokens = tokenise(split, tok, digest, 64)
    assert tokens.truncated == 8  # 40 texts, every fifth
    assert tokens.cut.nonzero().flatten().tolist() == list(range(0, 40, 5))
    bench = _bench(text_tasks, tiny_bert, max_length=64)
    assert bench.info["truncated"]["news"] == {"train": [8, 40], "test": [4, 20]}


# ---- bucketing -----------------------------------------------------------------------------------
def test_buckets_keep_every_sample_once_and_group_similar_lengths():
    lengths = torch.randint(3, 120, (1000,))
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(1000, generator=gen)
    out = bucketed(perm, lengths, 16, gen)
    assert sorted(out.tolist()) == list(range(1000))
    spread = lambda order: torch.stack([lengths[b].float().std() for b in torch.split(order, 16)[:-1]]).mean()  # noqa
    assert spread(out) < spread(perm) / 4  # batches of similar lengths
    assert len(set(lengths[out[-8:]].tolist()) & set(lengths[out[-24:-8]].tolist())) <= 2  # the short batch last
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(bucketed(perm, lengths, 16, g1), bucketed(perm, lengths, 16, g2))


def test_a_text_runs_batches_are_bucketed_by_length(text_tasks, tiny_bert):
    from retain.training.loop import iter_batches
    from text_fixtures import write_tasks

    write_tasks(text_tasks, train=400, long_every=3)
    bench = _bench(text_tasks, tiny_bert, max_length=96)
    exp = bench.experiences[0]
    widths = [int((x >= 0).sum(1).max()) for x, _, _ in iter_batches([exp], 16, torch.Generator().manual_seed(0))]
    # a third of the texts are long: random batches would almost all hold one; bucketed ones mostly not
    assert sum(w < 40 for w in widths) >= len(widths) // 2


# ---- scenarios -----------------------------------------------------------------------------------
def test_class_il_gives_each_task_its_own_labels(text_tasks, tiny_bert):
    bench = _bench(text_tasks, tiny_bert)
    assert bench.scenario == "class-il" and bench.num_classes == 7
    assert [e.classes for e in bench.experiences] == [(0, 1, 2), (3, 4), (5, 6)]
    assert bench.info["label_names"][3:5] == ["reviews:bad", "reviews:good"]
    assert bench.info["modality"] == "text"
    test = bench.experiences[0]
    lengths = (test.test_x >= 0).sum(1)
    assert (lengths[1:] >= lengths[:-1]).all()  # test rows sorted by length


def test_domain_il_shares_one_label_space_where_labels_coincide(text_tasks, tiny_bert):
    bench = _bench(text_tasks, tiny_bert, scenario="domain-il", stream="reviews,stars")
    assert bench.num_classes == 2 and [e.classes for e in bench.experiences] == [(0, 1), (0, 1)]
    with pytest.raises(ConfigError, match="domain-il needs one label set for every task; reviews has bad, good"):
        _bench(text_tasks, tiny_bert, scenario="domain-il", stream="news,reviews")


def test_per_task_budgets_are_the_same_draw_for_every_seed(text_tasks, tiny_bert):
    a = make_benchmark(f"text:{text_tasks}", tasks=2, seed=0, scenario=None, data_dir=None, tokenizer=str(tiny_bert),
                       train_per_task=10, test_per_task=6)
    b = make_benchmark(f"text:{text_tasks}", tasks=2, seed=7, scenario=None, data_dir=None, tokenizer=str(tiny_bert),
                       train_per_task=10, test_per_task=6)
    assert len(a) == 2 and a.experiences[0].num_train == 10 and len(a.experiences[1].test_y) == 6
    assert torch.equal(a.experiences[0].train_x, b.experiences[0].train_x)


def test_the_text_cl_folder_gives_the_published_orders(text_cl_dir, tiny_bert):
    from retain.benchmarks.text import STREAMS

    for stream, first in (("standard", "dbpedia"), ("standard-3", "yelp"), ("long", "mnli"), ("long-6", "yelp")):
        bench = make_benchmark("text-cl", tasks=1, seed=0, scenario=None, data_dir=str(text_cl_dir),
                               tokenizer=str(tiny_bert), stream=stream, train_per_task=8, test_per_task=8)
        assert bench.info["tasks"] == [first]
    assert len(STREAMS["long-4"]) == 14 and set(STREAMS["long-4"]) == set(STREAMS["long-5"]) == set(STREAMS["long-6"])
    with pytest.raises(ConfigError, match="did you mean agnews"):
        make_benchmark("text-cl", tasks=None, seed=0, scenario=None, data_dir=str(text_cl_dir),
                       tokenizer=str(tiny_bert), stream="agnew")


# ---- the encoder ---------------------------------------------------------------------------------
def test_padding_columns_change_nothing(tiny_bert):
    model = BACKBONES.get(f"hf:{tiny_bert}")((32,), 5).eval()
    x = torch.full((3, 32), PAD, dtype=torch.int32)
    x[0, :5] = torch.tensor([2, 10, 11, 12, 3])
    x[1, :3] = torch.tensor([2, 20, 3])
    x[2, :7] = torch.tensor([2, 30, 31, 32, 33, 34, 3])
    with torch.no_grad():
        full = model(x)
        alone = torch.cat([model(x[i: i + 1]) for i in range(3)])  # each row cut to its own length
    assert torch.allclose(full, alone, atol=1e-5)
    assert model.inputs(x)[0].shape == (3, 7)  # the batch's longest row, not 32


@pytest.mark.parametrize("mode, trains", [("full", None), ("frozen", {"head.weight", "head.bias"}),
                                          ("lora", "lora")])
def test_modes_choose_what_trains(tiny_bert, mode, trains):
    model = BACKBONES.get(f"hf:{tiny_bert}")((32,), 5, mode=mode)
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    if mode == "full":
        assert names == {n for n, _ in model.named_parameters()}
    elif mode == "frozen":
        assert names == trains
    else:
        assert names and all("lora_" in n or n.startswith("head.") for n in names)
        assert any("query.lora_A" in n for n in names) and any("value.lora_B" in n for n in names)


def test_a_text_run_learns_its_tasks(text_tasks, tiny_bert):
    from text_fixtures import write_tasks

    write_tasks(text_tasks, train=150, test=60)
    cfg = RunConfig(benchmark=f"text:{text_tasks}", backbone=f"hf:{tiny_bert}", strategy="naive", tasks=1,
                    epochs=6, lr=5e-3, benchmark_options={"max_length": 32}, backbone_options={"head_lr_scale": 1.0})
    result = run_experiment(cfg)
    assert result.acc_matrix[0][0] > 0.8  # 3 classes: chance is 1/3


def test_the_tokenizer_is_the_backbones_and_its_files_are_in_the_key(text_tasks, tiny_bert, tmp_path):
    import shutil

    spec = RunConfig(benchmark=f"text:{text_tasks}", backbone=f"hf:{tiny_bert}").resolve()
    assert spec.benchmark_options["tokenizer"] == str(tiny_bert) and spec.optimizer == "adam"
    assert spec.resolved["benchmark_options"]["tokenizer"] == "<backbone>"
    copy = shutil.copytree(tiny_bert, tmp_path / "copy")
    vocab = json.loads((copy / "tokenizer.json").read_text())
    vocab["model"]["vocab"]["w0"], vocab["model"]["vocab"]["w1"] = vocab["model"]["vocab"]["w1"], vocab["model"][
        "vocab"]["w0"]
    (copy / "tokenizer.json").write_text(json.dumps(vocab))
    other = RunConfig(benchmark=f"text:{text_tasks}", backbone=f"hf:{copy}").resolve()
    assert other.key != spec.key  # same weights, another vocabulary: other runs


def test_shards_count_in_the_key(tiny_bert, tmp_path, text_tasks):
    from transformers import BertModel

    a, b = tmp_path / "a", tmp_path / "b"
    model = BertModel.from_pretrained(tiny_bert)
    for where in (a, b):
        model.save_pretrained(where, max_shard_size="20KB")
        for f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
            if (tiny_bert / f).is_file():
                (where / f).write_bytes((tiny_bert / f).read_bytes())
    assert len(list(a.glob("model-*-of-*.safetensors"))) > 1
    key_a = RunConfig(benchmark=f"text:{text_tasks}", backbone=f"hf:{a}").resolve().key
    with torch.no_grad():
        model.encoder.layer[1].output.dense.weight.add_(1.0)  # a tensor in a later shard
    model.save_pretrained(b, max_shard_size="20KB")
    key_b = RunConfig(benchmark=f"text:{text_tasks}", backbone=f"hf:{b}").resolve().key
    same = RunConfig(benchmark=f"text:{text_tasks}", backbone=f"hf:{a}").resolve().key
    assert key_a == same and key_a != key_b


# ---- errors: one line, exit 2, nothing written ---------------------------------------------------
def _refused(tmp_path, *args):
    out = tmp_path / "out"
    done = _cli("run", *args, "--out", str(out), "--workers", "1")
    assert done.returncode == 2, done.stderr + done.stdout
    lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert not out.exists() or not any(out.iterdir())
    return lines[0]


def test_a_text_benchmark_with_an_image_backbone_is_refused(tmp_path, text_tasks):
    line = _refused(tmp_path, "--benchmark", f"text:{text_tasks}", "--strategy", "naive")
    assert "gives text inputs but backbone mlp takes image" in line and "hf:" in line


def test_an_image_benchmark_with_a_text_backbone_is_refused(tmp_path, tiny_bert):
    line = _refused(tmp_path, "--benchmark", "split-digits", "--backbone", f"hf:{tiny_bert}", "--strategy", "naive")
    assert "gives image inputs but backbone" in line and "takes text" in line


def test_a_missing_model_directory_is_refused(tmp_path, text_tasks):
    line = _refused(tmp_path, "--benchmark", f"text:{text_tasks}", "--backbone", f"hf:{tmp_path / 'nowhere'}")
    assert "no directory" in line and "never downloads" in line


def test_a_tokenizer_larger_than_the_embedding_is_refused(tmp_path, text_tasks, tiny_bert):
    from text_fixtures import save_tiny_bert, vocabulary

    big = save_tiny_bert(tmp_path / "big", vocab=vocabulary() + [f"extra{i}" for i in range(50)])
    line = _refused(tmp_path, "--benchmark", f"text:{text_tasks}", "--backbone", f"hf:{tiny_bert}",
                    "--benchmark-option", f"tokenizer={big}", "--strategy", "naive")
    assert "tokens but the model's embedding has" in line


def test_a_lora_target_that_is_not_in_the_model_is_refused(tmp_path, text_tasks, tiny_bert):
    line = _refused(tmp_path, "--benchmark", f"text:{text_tasks}", "--backbone", f"hf:{tiny_bert}",
                    "--backbone-option", "mode=lora", "--backbone-option", "lora_targets=q_proj", "--strategy", "naive")
    assert "LoRA target(s) q_proj are not linear modules" in line and "query" in line


@pytest.mark.parametrize("damage, expect", [
    ("unrelated", "unexpected"), ("missing", "missing"), ("truncated", "truncated"), ("empty", "not a safetensors"),
    ("header", "not a safetensors"), ("pickle", "a pickle"), ("none", "has no weights"), ("heads", "not divisible"),
])
def test_damaged_weights_are_refused_before_any_run(tmp_path, text_tasks, tiny_bert, damage, expect):
    import shutil

    from safetensors.torch import load_file, save_file

    where = shutil.copytree(tiny_bert, tmp_path / "m")
    weights = where / "model.safetensors"
    state = load_file(weights)
    if damage == "unrelated":
        save_file({f"other.{k}": v for k, v in state.items()}, weights)
    elif damage == "missing":
        save_file(dict(list(state.items())[:6]), weights)
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:-100])
    elif damage == "empty":
        weights.write_bytes(b"")
    elif damage == "header":
        weights.write_bytes((2**40).to_bytes(8, "little") + b"{}")
    elif damage == "pickle":
        weights.unlink()
        torch.save(state, where / "pytorch_model.bin")
    elif damage == "none":
        weights.unlink()
    elif damage == "heads":
        cfg = json.loads((where / "config.json").read_text())
        cfg["num_attention_heads"] = 3
        (where / "config.json").write_text(json.dumps(cfg))
    line = _refused(tmp_path, "--benchmark", f"text:{text_tasks}", "--backbone", f"hf:{where}", "--strategy", "naive")
    assert expect in line and "weights_only=False" not in line


def test_a_prompt_method_on_a_text_encoder_says_why(tmp_path, text_tasks, tiny_bert):
    line = _refused(tmp_path, "--benchmark", f"text:{text_tasks}", "--backbone", f"hf:{tiny_bert}",
                    "--strategy", "l2p")
    assert "strategy l2p does not work on text benchmarks" in line and "ViT" in line


def test_the_pool_and_the_batched_seed_plan_take_text_runs(tmp_path, text_tasks, tiny_bert):
    out = tmp_path / "out"
    done = _cli("run", "--benchmark", f"text:{text_tasks}", "--backbone", f"hf:{tiny_bert}", "--strategy", "er",
                "--seeds", "2", "--workers", "2", "--tasks", "2", "--buffer-size", "20", "--out", str(out),
                "--benchmark-option", "max_length=32")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "not batched" in done.stdout + done.stderr  # said once, with the reason
    from retain.store import Store

    with Store(out / "retain.db") as store:
        runs = store.runs()
    assert len(runs) == 2 and {r.seed for r in runs} == {0, 1}


def test_retain_run_says_what_max_length_cut(tmp_path, text_tasks, tiny_bert):
    from text_fixtures import write_tasks

    write_tasks(text_tasks, long_every=5)
    done = _cli("run", "--benchmark", f"text:{text_tasks}", "--backbone", f"hf:{tiny_bert}", "--strategy", "naive",
                "--tasks", "1", "--benchmark-option", "max_length=32", "--out", str(tmp_path / "out"), "--workers", "1",
                "--no-report")
    assert done.returncode == 0, done.stderr
    said = " ".join((done.stdout + done.stderr).split())
    assert "8 of 40 training and 4 of 20 test texts cut to 32 tokens (news 20%)" in said


def test_the_head_trains_at_its_own_rate(tiny_bert, text_tasks):
    from retain.training.loop import build

    cfg = RunConfig(benchmark=f"text:{text_tasks}", backbone=f"hf:{tiny_bert}", strategy="naive", lr=1e-4)
    _, strategy = build(cfg)
    groups = {g["lr"]: sum(p.numel() for p in g["params"]) for g in strategy.optimizer.param_groups}
    head = sum(p.numel() for p in strategy.model.head.parameters())
    assert groups == {1e-4: sum(p.numel() for p in strategy.model.parameters()) - head, 1e-2: head}


# ---- your own text -------------------------------------------------------------------------------
def test_text_from_arrays_cuts_tasks_by_labels_and_domains(tiny_bert):
    from retain.benchmarks import text_from_arrays, text_from_hf

    texts = [f"w{i % 7} w{i % 5} w{i % 3}" for i in range(60)]
    labels = [["cat", "dog", "eel", "fox"][i % 4] for i in range(60)]
    bench = text_from_arrays(texts, labels, texts[:20], labels[:20], tasks=2, tokenizer=str(tiny_bert), max_length=16)
    assert bench.num_classes == 4 and [e.classes for e in bench.experiences] == [(0, 1), (2, 3)]
    assert bench.info["label_names"] == ["task-0:cat", "task-0:dog", "task-1:eel", "task-1:fox"]
    assert bench.experiences[0].num_train == 30 and bench.experiences[0].train_x.dtype == torch.int32
    domains = ([i % 3 for i in range(60)], [i % 3 for i in range(20)])
    by_domain = text_from_arrays(texts, labels, texts[:20], labels[:20], domains=domains, tokenizer=str(tiny_bert))
    assert by_domain.scenario == "domain-il" and len(by_domain) == 3 and by_domain.num_classes == 4
    hf = text_from_hf({"train": {"text": texts, "label": labels}, "test": {"text": texts[:20], "label": labels[:20]}},
                      tokenizer=str(tiny_bert), tasks=2, max_length=16)
    assert torch.equal(hf.experiences[1].train_x, bench.experiences[1].train_x)
    with pytest.raises(ConfigError, match="test labels \\['gnu'\\] never occur in training"):
        text_from_arrays(texts, labels, ["w1"], ["gnu"], tokenizer=str(tiny_bert))
    with pytest.raises(ConfigError, match="needs splits 'train', 'test' with columns 'text' and 'label'"):
        text_from_hf({"train": {"sentence": texts}}, tokenizer=str(tiny_bert))


def test_a_vit_directory_with_foreign_or_missing_weights_is_refused_at_validation(tmp_path):
    from safetensors.torch import load_file, save_file
    from transformers import ViTConfig, ViTModel

    where = tmp_path / "vit"
    ViTModel(ViTConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=16, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=32), add_pooling_layer=False).save_pretrained(where)
    RunConfig(benchmark="synthetic", backbone=f"hf:{where}").resolve()  # sound: accepted
    state = load_file(where / "model.safetensors")
    save_file({k: v for i, (k, v) in enumerate(state.items()) if i % 3}, where / "model.safetensors")
    with pytest.raises(ConfigError, match="do not fit its config.json: missing"):
        RunConfig(benchmark="synthetic", backbone=f"hf:{where}").resolve()


def test_a_symlink_loop_is_one_line(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    line = _refused(tmp_path, "--benchmark", "synthetic", "--backbone", f"hf:{loop}", "--strategy", "naive")
    assert f"hf:{loop}" in line
