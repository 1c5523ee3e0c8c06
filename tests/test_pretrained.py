"""Pretrained backbones by name (hf:DIR, hf-vit), `retain pretrain`, and the methods built on a frozen
ViT: L2P, CODA-Prompt, RanPAC (with its feature cache and closed-form head) and Online-LoRA on the
transformers ViT. Every model here is a tiny ViT that the tests create and save themselves, so the
real loading code runs without a network."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("transformers", reason="the `lora` extra (transformers) is not installed")

from transformers import ViTConfig, ViTModel  # noqa: E402

from retain.cli.main import main  # noqa: E402
from retain.config.run import RunConfig  # noqa: E402
from retain.errors import ConfigError  # noqa: E402
from retain.models import BACKBONES  # noqa: E402
from retain.strategies.ranpac import RIDGE_GRID, RanPACConfig, RidgeHead  # noqa: E402
from retain.training.loop import build, iter_batches, run_experiment  # noqa: E402


def _save_vit(path, *, image_size=4, patch=2, channels=1, dim=16, depth=2, mean=None, seed=0):
    torch.manual_seed(seed)
    cfg = ViTConfig(image_size=image_size, patch_size=patch, num_channels=channels, hidden_size=dim,
                    num_hidden_layers=depth, num_attention_heads=2, intermediate_size=2 * dim)
    ViTModel(cfg, add_pooling_layer=False).save_pretrained(path)
    if mean is not None:
        (path / "preprocessor_config.json").write_text(json.dumps({"image_mean": mean, "image_std": [0.25] * channels}))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 2-layer, width-16 ViT for 1 x 4 x 4 images: the synthetic benchmark's 16 features."""
    return _save_vit(tmp_path_factory.mktemp("tiny-vit"))


def test_loads_a_saved_vit_and_reads_its_cls_feature(tiny):
    model = BACKBONES.get(f"hf:{tiny}")((16,), 4)
    x = torch.rand(3, 16)
    reference = ViTModel.from_pretrained(tiny, add_pooling_layer=False)
    pixels = (x.reshape(3, 1, 4, 4) - 0.5) / 0.5  # the ViT image processor's defaults
    assert torch.allclose(model.features(x), reference(pixel_values=pixels).last_hidden_state[:, 0], atol=1e-6)
    assert model(x).shape == (3, 4) and model.head.in_features == 16


def test_inputs_are_reshaped_resized_and_normalised_for_the_model(tmp_path):
    where = _save_vit(tmp_path / "rgb8", image_size=8, channels=3, mean=[0.1, 0.2, 0.3])
    model = BACKBONES.get(f"hf:{where}")((16,), 4)  # grey 4 x 4 in, RGB 8 x 8 expected
    x = torch.rand(2, 16)
    pixels = model.prepare(x)
    assert pixels.shape == (2, 3, 8, 8)
    grey = F.interpolate(x.reshape(2, 1, 4, 4), size=(8, 8), mode="bilinear", align_corners=False)
    assert torch.allclose(pixels[:, 2], (grey[:, 0] - 0.3) / 0.25, atol=1e-6)
    undo = BACKBONES.get(f"hf:{where}")((16,), 4, input_mean=(0.5,), input_std=(2.0,))
    assert torch.allclose(undo.prepare((x - 0.5) / 2.0), pixels, atol=1e-5)  # a standardised benchmark


def test_missing_model_is_one_line_naming_where_it_was_looked_for(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ConfigError, match="no directory .* and no model 'nobody/nothing' in the Hugging Face cache"):
        RunConfig(benchmark="synthetic", backbone="hf:nobody/nothing").resolve()
    code = main(["run", "--benchmark", "synthetic", "--backbone", f"hf:{tmp_path / 'absent'}", "--strategy",
                 "naive", "--seeds", "1", "--out", str(tmp_path / "out"), "--quiet", "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert str(tmp_path / "absent") in err and "never downloads" in err


def test_a_directory_without_config_and_a_non_vit_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="has no config.json"):
        BACKBONES.get(f"hf:{tmp_path / 'empty'}")((16,), 4)
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ConfigError, match="model type 'bert' is not a ViT and .* has no tokenizer files"):
        BACKBONES.get(f"hf:{tmp_path / 'bert'}")((16,), 4)


def test_new_weights_in_the_same_directory_make_new_run_keys(tmp_path):
    where = _save_vit(tmp_path / "v", seed=0)
    key = RunConfig(benchmark="synthetic", backbone=f"hf:{where}").key()
    assert RunConfig(benchmark="synthetic", backbone=f"hf:{where}").key() == key
    _save_vit(where, seed=1)
    assert RunConfig(benchmark="synthetic", backbone=f"hf:{where}").key() != key


def test_layers_in_steps_match_the_model_and_prefixes_act_as_prepended_tokens(tiny):
    model = BACKBONES.get(f"hf:{tiny}")((16,), 4).eval()
    x = torch.rand(3, 16)
    tokens = model.embed(x)
    assert torch.allclose(model.final_norm(model.run_layers(tokens))[:, 0], model.features(x), atol=1e-6)
    layer = model.layers[0]
    extra = torch.randn(3, 2, 16)  # two more tokens: as prefixes, their keys and values are projected
    normed = layer.layernorm_before(extra)
    att = layer.attention
    with_prefix = model.run_layers(tokens, {0: (att.k_proj(normed), att.v_proj(normed))})
    prepended = torch.cat([extra, tokens], 1)
    out = layer(prepended, None)[:, 2:]
    for later in model.layers[1:]:
        out = later(out, None)
    assert torch.allclose(with_prefix, out, atol=1e-5)


def test_hf_vit_from_scratch_and_its_patch_choice():
    from retain.models.hf import default_patch

    assert (default_patch(28), default_patch(32), default_patch(224), default_patch(4)) == (7, 16, 16, 2)
    model = BACKBONES.get("hf-vit")((784,), 10, dim=16, depth=1, heads=2)
    assert model(torch.rand(2, 784)).shape == (2, 10)
    with pytest.raises(ConfigError, match="patch 5 divides"):
        BACKBONES.get("hf-vit")((784,), 10, patch=5)


# ---- RanPAC: feature cache and closed-form head -----------------------------------------------------

def test_feature_cache_passes_each_image_through_the_backbone_once(tiny):
    spec = RunConfig(benchmark="synthetic", strategy="ranpac", backbone=f"hf:{tiny}", epochs=3,
                     params={"projection_dim": 32}).resolve()
    bench, strategy = build(spec)
    rows = []
    strategy.model.vit.register_forward_pre_hook(lambda m, args, kwargs: rows.append(len(kwargs["pixel_values"])),
                                                 with_kwargs=True)
    exp = bench.experiences[0]
    strategy.begin_task(exp)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        for x, y, _ in iter_batches([exp], 16, gen):
            strategy.observe(x, y, 0)
    assert sum(rows) == exp.num_train == strategy.cache.encoded == len(strategy.cache)
    assert int(strategy.model.head.counts.sum()) == exp.num_train  # statistics counted each image once


def test_ridge_head_equals_a_direct_least_squares_solve():
    torch.manual_seed(0)
    cfg = RanPACConfig(projection_dim=24, ridge=0.5)
    head = RidgeHead(8, 3, cfg)
    f, y = torch.randn(60, 8), torch.randint(0, 3, (60,))
    head.add(f[:25], y[:25])
    head.add(f[25:], y[25:])  # accumulated in two parts
    head.solve()
    h = F.relu(f @ head.projection).double()
    stacked = torch.cat([h, math.sqrt(0.5) * torch.eye(24, dtype=torch.float64)])
    targets = torch.cat([F.one_hot(y, 3).double(), torch.zeros(24, 3, dtype=torch.float64)])
    direct = torch.linalg.lstsq(stacked, targets).solution
    assert torch.allclose(head.weight.double(), direct, atol=1e-5)
    assert torch.allclose(head(f[:5]), h[:5].float() @ direct.float(), atol=1e-4)


def test_ridge_is_chosen_from_the_grid_on_held_out_samples_and_unseen_classes_never_win():
    torch.manual_seed(0)
    head = RidgeHead(4, 5, RanPACConfig(projection_dim=0, ridge=0.0))
    f, y = torch.randn(100, 4) + torch.arange(100).remainder(2)[:, None] * 3, torch.arange(100).remainder(2)
    held = torch.arange(100) % 5 == 4
    head.held_out = lambda: (f[held], y[held])
    head.add(f, y, held)
    head.solve()
    assert head.chosen_ridge in RIDGE_GRID
    assert set(head(torch.randn(50, 4)).argmax(1).tolist()) <= {0, 1}


def test_ranpac_and_ncm_learn_class_il_and_task_il(tiny):
    for params in ({"projection_dim": 64}, {"projection_dim": 0, "classifier": "ncm"}):
        for scenario in ("class-il", "task-il"):
            res = run_experiment(RunConfig(benchmark="synthetic", strategy="ranpac", backbone=f"hf:{tiny}",
                                           scenario=scenario, params=params))
            assert min(res.acc_matrix[-1]) > 0.8, (params, scenario, res.acc_matrix)


# ---- prompt methods ----------------------------------------------------------------------------

def test_l2p_trains_prompts_keys_and_head_only(tiny):
    bench, strategy = build(RunConfig(benchmark="synthetic", strategy="l2p", backbone=f"hf:{tiny}",
                                      params={"pool_size": 4, "prompt_length": 2, "top_k": 2}).resolve())
    strategy.begin_task(bench.experiences[0])
    before = {n: p.detach().clone() for n, p in strategy.model.named_parameters()}
    x, y, _ = next(iter_batches(bench.experiences[:1], 16, torch.Generator().manual_seed(0)))
    out = strategy.observe(x, y, 0)
    changed = {n for n, p in strategy.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {"keys", "prompts", "backbone.head.weight", "backbone.head.bias"}
    assert strategy.model.key_match.shape == (16, 2) and float(out["key_match"]) <= 2.0


def test_coda_components_grow_per_task_orthogonal_with_earlier_ones_frozen(tiny):
    bench, strategy = build(RunConfig(benchmark="synthetic", strategy="coda-prompt", backbone=f"hf:{tiny}",
                                      params={"components": 3, "prompt_length": 2}).resolve())
    model = strategy.model
    strategy.begin_task(bench.experiences[0])
    strategy.begin_task(bench.experiences[1])
    keys, attention, prompts = model.components()
    assert keys.shape == (2, 6, 16) and prompts.shape == (2, 6, 2, 16)  # 2 prompted layers (the model has 2)
    gram = keys[0] @ keys[0].T
    assert torch.allclose(gram, torch.eye(6), atol=1e-5)  # orthonormal across both tasks' blocks
    assert [p.requires_grad for p in model.keys] == [False, True]
    assert model.seen.mask.tolist() == [True, True, True, True]


@pytest.mark.parametrize("strategy", ["l2p", "coda-prompt", "ranpac", "online-lora", "naive", "er"])
def test_each_method_runs_from_the_cli_on_a_saved_vit(tiny, tmp_path, strategy):
    extra = {"online-lora": ["--task-free"], "er": ["--buffer-size", "20"], "ranpac": ["--projection-dim", "64"]}
    code = main(["run", "--benchmark", "synthetic", "--benchmark-option", "per_class=16", "--epochs", "1",
                 "--backbone", f"hf:{tiny}", "--strategy", strategy, "--seeds", "1", "--out", str(tmp_path), "--quiet",
                 "--workers", "1", "--no-report", "--warnings", "none", *extra.get(strategy, [])])
    assert code == 0


def test_the_methods_run_from_a_study_file_on_a_saved_vit(tiny, tmp_path):
    study = tmp_path / "study.toml"
    study.write_text(f"""
[study]
seeds = 1
[settings]
backbone = "hf:{tiny}"
scenario = "task-il"  # class-IL: the command-line tests above
epochs = 1
[benchmarks.synthetic]
[benchmarks.synthetic.options]
per_class = 16
[strategies.l2p]
pool_size = 4
[strategies.coda-prompt]
[strategies.ranpac]
projection_dim = 64
""")
    assert main(["run", str(study), "--out", str(tmp_path / "out"), "--quiet", "--workers", "1", "--no-report",
                 "--warnings", "none"]) == 0


def test_prompt_methods_refuse_a_backbone_without_tokens():
    with pytest.raises(ConfigError, match="l2p needs a ViT backbone read in steps"):
        run_experiment(RunConfig(benchmark="synthetic", strategy="l2p", backbone="mlp"))


def test_online_lora_adapts_the_hf_vit_query_and_value_projections(tiny):
    pytest.importorskip("peft", reason="the `lora` extra (peft) is not installed")
    from retain.strategies.online_lora import _targets

    model = BACKBONES.get(f"hf:{tiny}")((16,), 4)
    targets = _targets(model, "auto")
    assert targets and all(t.endswith(("attention.q_proj", "attention.v_proj")) for t in targets)
    assert len(targets) == 2 * len(model.layers)
    res = run_experiment(RunConfig(benchmark="synthetic", strategy="online-lora", backbone=f"hf:{tiny}",
                                   task_free=True, params={"mean_threshold": 5.0, "var_threshold": 1.0}))
    assert res.stats[-1]["consolidations"] >= 1 and res.stats[-1]["merge_max_abs_error"] < 1e-4


# ---- retain pretrain and the classes option -------------------------------------------------------

def test_pretrain_saves_a_vit_that_hf_loads(tmp_path, capsys):
    out = tmp_path / "pre"
    assert main(["pretrain", "--benchmark", "synthetic", "--out", str(out), "--patch", "2", "--dim", "16",
                 "--depth", "1", "--heads", "2", "--epochs", "2", "--lr", "0.01"]) == 0
    record = json.loads((out / "retain_pretrain.json").read_text())
    assert record["classes"] == [0, 1, 2, 3] and record["test_accuracy"] > 0.5
    model = BACKBONES.get(f"hf:{out}")((16,), 4)
    assert model.vit.config.hidden_size == 16
    assert main(["pretrain", "--benchmark", "synthetic", "--out", str(out)]) == 2  # never overwrites
    assert "not an empty directory" in capsys.readouterr().err


def test_split_keeps_only_the_classes_asked_for():
    from retain.benchmarks import builders
    from retain.data.transforms import ToFloat

    x, y = torch.zeros(100, 4, dtype=torch.uint8), torch.arange(100) % 10
    bench = builders.split("s", (x, y, x, y), tasks=3, seed=0, scenario=None, to_float=ToFloat(), num_classes=10,
                           classes=builders.parse_classes("4-9", 10, "s"))
    assert [e.classes for e in bench.experiences] == [(4, 5), (6, 7), (8, 9)] and bench.num_classes == 10
    assert builders.parse_classes("0-2,7", 10, "s") == [0, 1, 2, 7]
    for bad in ("9-12", "a", "3,3"):
        with pytest.raises(ConfigError, match="classes"):
            builders.parse_classes(bad, 10, "s")


def test_timm_names_are_refused_in_one_line_when_timm_or_its_weights_are_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-home"))
    refused = r"backbone timm:vit_tiny_patch16_224: (timm is not installed|cannot create it offline from the Hugging)"
    with pytest.raises(ConfigError, match=refused):
        BACKBONES.get("timm:vit_tiny_patch16_224")((16,), 4)
