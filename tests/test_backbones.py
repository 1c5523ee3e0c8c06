"""Vision backbones: sizes, the features/head contract, ViT attention with named q/k/v layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from retain.errors import ConfigError
from retain.models import BACKBONES

n_params = lambda m: sum(p.numel() for p in m.parameters())


def test_reduced_resnet18_matches_gem_size_and_full_resnet18_is_ten_times_larger():
    reduced = BACKBONES.get("resnet18-reduced")((3, 32, 32), 100)
    full = BACKBONES.get("resnet18")((3, 32, 32), 10)
    # GEM's reduced ResNet-18 (nf=20) has about 1.1M parameters; the CIFAR ResNet-18 about 11.2M.
    assert 1.0e6 < n_params(reduced) < 1.3e6
    assert 11.0e6 < n_params(full) < 11.4e6
    assert reduced.feature_dim == 160 and full.feature_dim == 512


@pytest.mark.parametrize("name, options", [
    ("resnet18-reduced", {"nf": 4}),
    ("vit-tiny", {"dim": 24, "depth": 2, "heads": 3}),
])
@pytest.mark.parametrize("size", [32, 64])
def test_features_and_head_contract(name, options, size):
    model = BACKBONES.get(name)((3, size, size), 7, **options)
    x = torch.randn(5, 3, size, size)
    feats = model.features(x)
    assert isinstance(model.head, nn.Linear) and model.head.out_features == 7
    assert feats.shape == (5, model.feature_dim) == (5, model.head.in_features)
    assert torch.allclose(model(x), model.head(feats), atol=1e-5)
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_vit_has_separate_query_key_value_linears_in_every_block():
    model = BACKBONES.get("vit-tiny")((3, 32, 32), 10)
    names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    assert {"query", "key", "value"} <= names
    queries = [m for n, m in model.named_modules() if n.endswith(".query")]
    assert len(queries) == 12 and all(isinstance(m, nn.Linear) and m.in_features == 192 for m in queries)
    assert 5.0e6 < n_params(model) < 6.0e6  # DeiT-Tiny size


def test_vit_attention_equals_torch_multihead_attention():
    torch.manual_seed(0)
    attn = BACKBONES.get("vit-tiny")((3, 32, 32), 10, dim=12, depth=1, heads=3).blocks[0].attn
    ref = nn.MultiheadAttention(12, 3, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([attn.query.weight, attn.key.weight, attn.value.weight]))
        ref.in_proj_bias.copy_(torch.cat([attn.query.bias, attn.key.bias, attn.value.bias]))
        ref.out_proj.weight.copy_(attn.proj.weight)
        ref.out_proj.bias.copy_(attn.proj.bias)
    x = torch.randn(2, 5, 12)
    expected = ref(x, x, x, need_weights=False)[0]
    assert torch.allclose(attn(x), expected, atol=1e-5)
    attn.batched_products = True  # the explicit products an ensemble maps over members: the same function
    assert torch.allclose(attn(x), expected, atol=1e-5)


@pytest.mark.parametrize("name, shape, options, message", [
    ("resnet18-reduced", (784,), {}, "needs image inputs"),
    ("resnet18", (3, 32, 32), {"nf": 0}, "nf .* positive integer"),
    ("vit-tiny", (3, 32, 32), {"patch": 5}, "patch 5 must divide"),
    ("vit-tiny", (3, 32, 32), {"dim": 10, "heads": 3}, "divisible by heads"),
])
def test_bad_backbone_options_are_config_errors(name, shape, options, message):
    with pytest.raises(ConfigError, match=message):
        BACKBONES.get(name)(shape, 10, **options)


def test_run_config_rejects_unknown_backbone_options():
    from retain.config.run import RunConfig

    with pytest.raises(ConfigError, match=r"backbone 'vit-tiny' has no option\(s\) \['nf'\]; known: .*'patch'"):
        RunConfig(backbone="vit-tiny", backbone_options={"nf": 3}).validate()
    assert RunConfig(backbone="resnet18-reduced", backbone_options={"nf": 3}).validate().backbone_options == {"nf": 3}


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_checkpoint_loads_weights_and_swaps_a_head_of_another_size(tmp_path, suffix):
    kw = {"dim": 12, "depth": 1, "heads": 3}
    src = BACKBONES.get("vit-tiny")((3, 32, 32), 100, **kw)
    path = tmp_path / f"vit{suffix}"
    if suffix == ".pt":
        torch.save({"model": src.state_dict()}, path)
    else:
        from safetensors.torch import save_file

        save_file(src.state_dict(), str(path))
    dst = BACKBONES.get("vit-tiny")((3, 32, 32), 10, checkpoint=str(path), **kw)
    assert torch.equal(dst.blocks[0].attn.query.weight, src.blocks[0].attn.query.weight)
    assert dst.head.out_features == 10
    with pytest.raises(ConfigError, match="does not fit ResNet: missing"):
        BACKBONES.get("resnet18-reduced")((3, 32, 32), 10, nf=2, checkpoint=str(path))


def test_checkpoint_with_code_or_garbage_is_refused(tmp_path):
    import os
    import pickle

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'pwned'}",)

    (tmp_path / "evil.pt").write_bytes(pickle.dumps(Evil(), protocol=2))
    with pytest.raises(ConfigError, match="evil.pt: refused or unreadable") as exc:
        BACKBONES.get("resnet18")((3, 32, 32), 10, nf=2, checkpoint=str(tmp_path / "evil.pt"))
    assert not (tmp_path / "pwned").exists()
    # one line, without torch's advice to load the file unsafely
    assert "\n" not in str(exc.value) and "weights_only=False" not in str(exc.value)
    with pytest.raises(ConfigError, match="does not exist"):
        BACKBONES.get("resnet18")((3, 32, 32), 10, checkpoint=str(tmp_path / "none.pt"))
