"""LoRA from scratch (``adaptertune_lite.lora``) and the two methods beside AdapterTune, ``lora`` and ``bitfit``.

What the course relies on: LoRA changes nothing at step 0 (bitwise), merging gives back a plain timm model
that computes what the LoRA model computed, the three scaling conventions scale as stated, and the
from-scratch layer computes exactly what peft's LoRA computes on the same weights."""

import math

import pytest
import timm
import torch
from torch import nn

import adaptertune_lite as at
from adaptertune_lite.course.experiments import RunConfig


def _vit(name: str) -> nn.Module:
    """A small ViT in eval mode: the kit backbone, or a timm architecture with random weights at 32 px."""
    torch.manual_seed(0)
    if name == "kit_vit_tiny":
        return at.load_backbone(name, num_classes=5).eval()
    return timm.create_model(name, pretrained=False, img_size=32, num_classes=5).eval()


def _train_B(model: nn.Module, seed: int = 1) -> None:
    """Give every B a non-zero value, as training would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in at.lora_layers(model).values():
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=g) * 0.05)


VITS = ["kit_vit_tiny", "vit_tiny_patch16_224", "vit_small_patch16_224"]


@pytest.mark.parametrize("name", VITS)
def test_lora_leaves_the_output_bitwise_unchanged_at_step_0(name):
    model = _vit(name)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
        at.add_lora(model, rank=4, alpha=8, scaling="alpha/sqrt(r)")
        after = model(x)
    assert len(at.lora_layers(model)) == 4 * len(model.blocks)
    assert torch.equal(after, before)


@pytest.mark.parametrize("name", VITS)
def test_merging_gives_a_plain_timm_model_with_the_same_outputs(name):
    model = _vit(name)
    keys = list(model.state_dict())
    x = torch.randn(3, 3, 32, 32)
    at.add_lora(model, rank=4, alpha=16)
    _train_B(model)
    with torch.no_grad():
        unmerged = model(x)
        merged_model = at.merge_lora(model)
        merged = merged_model(x)
    assert not at.lora_layers(merged_model)
    assert all(type(m) is nn.Linear for b in merged_model.blocks for m in (b.attn.qkv, b.attn.proj, b.mlp.fc1, b.mlp.fc2))
    assert list(merged_model.state_dict()) == keys  # the backbone's own keys, as before add_lora
    assert (unmerged - before_lora(name, x)).abs().max() > 1e-3  # the update really changed the function
    torch.testing.assert_close(merged, unmerged, atol=1e-4, rtol=1e-4)


def before_lora(name: str, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return _vit(name)(x)


def test_merge_adds_s_times_BA_to_each_weight():
    model = _vit("kit_vit_tiny")
    w0 = model.blocks[2].mlp.fc1.weight.detach().clone()
    at.add_lora(model, rank=3, alpha=6)
    _train_B(model)
    layer = model.blocks[2].mlp.fc1
    want = w0 + 2.0 * layer.lora_B.detach() @ layer.lora_A.detach()  # s = alpha / r = 2
    at.merge_lora(model)
    torch.testing.assert_close(model.blocks[2].mlp.fc1.weight.detach(), want)


@pytest.mark.parametrize("scaling, rank, alpha, s", [
    ("alpha/r", 4, 8, 2.0), ("alpha/r", 16, 8, 0.5), ("alpha/sqrt(r)", 16, 8, 2.0), ("fixed", 16, 8, 8.0),
    ("alpha/r", 16, None, 1.0), ("fixed", 1, None, 1.0),
])
def test_the_three_scaling_conventions(scaling, rank, alpha, s):
    assert at.lora.lora_scale(rank, alpha, scaling) == pytest.approx(s)
    layer = at.LoRALinear(nn.Linear(6, 5), rank, alpha, scaling)
    assert layer.scale == pytest.approx(s)
    assert f"scaling={scaling!r}" in repr(layer)


def test_print_model_shows_each_lora_layer_and_its_scale():
    model = at.add_lora(_vit("kit_vit_tiny"), rank=2, targets=("qkv",))
    text = str(model.blocks[0].attn)
    assert "(qkv): LoRALinear(" in text and "rank=2" in text and "s=1" in text
    assert "LoRALinear" not in str(model.blocks[0].mlp)


def test_bad_arguments_fail_clearly_and_change_nothing():
    model = _vit("kit_vit_tiny")
    keys = list(model.state_dict())
    with pytest.raises(ValueError, match="choose from qkv, proj, fc1, fc2"):
        at.add_lora(model, rank=2, targets=("q",))
    with pytest.raises(ValueError, match="choose one of alpha/r"):
        at.add_lora(model, rank=2, scaling="alpha")
    with pytest.raises(ValueError, match="int >= 1"):
        at.add_lora(model, rank=0)
    assert list(model.state_dict()) == keys
    at.add_lora(model, rank=2)
    with pytest.raises(ValueError, match="already has LoRA"):
        at.add_lora(model, rank=2)
    with pytest.raises(ValueError, match="add_lora"):
        at.set_trainable(_vit("kit_vit_tiny"), "lora")


def test_set_trainable_lora_and_bitfit_train_what_they_say():
    model = at.add_lora(_vit("kit_vit_tiny"), rank=2)
    at.set_trainable(model, "lora")
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names == {n for n in names if "lora_" in n or n.startswith("head.")}
    assert sum("lora_" in n for n in names) == 2 * 4 * len(model.blocks)
    count = at.count_parameters(model)
    assert count.lora == sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    assert count.trainable == count.lora + count.head

    plain = at.set_trainable(_vit("kit_vit_tiny"), "bitfit")
    trained = {n for n, p in plain.named_parameters() if p.requires_grad}
    assert trained == {n for n, _ in plain.named_parameters() if n.endswith("bias") or n.startswith("head.")}
    assert "blocks.0.norm1.bias" in trained and "blocks.0.attn.qkv.weight" not in trained


def test_lora_at_r_2_matches_adaptertune_at_r_16_in_trainable_parameters():
    """The budget notebook 08 compares at: LoRA on 4 linears costs 16·d·r per block, an adapter 2·d·r + r + d."""
    lora = at.count_parameters(at.add_lora(_vit("kit_vit_tiny"), rank=2)).lora
    adapters = at.count_parameters(at.add_adapters(_vit("kit_vit_tiny"), rank=16)).adapter
    assert lora == 6 * 16 * 192 * 2 and abs(lora - adapters) / adapters < 0.05


@pytest.mark.parametrize("scaling", ["alpha/r", "alpha/sqrt(r)"])
def test_from_scratch_lora_computes_what_peft_computes_on_the_same_weights(scaling):
    peft = pytest.importorskip("peft")
    rank, alpha = 4, 8
    ours = at.add_lora(_vit("kit_vit_tiny"), rank=rank, alpha=alpha, scaling=scaling)
    _train_B(ours)
    theirs = peft.get_peft_model(_vit("kit_vit_tiny"), peft.LoraConfig(
        r=rank, lora_alpha=alpha, lora_dropout=0.0, use_rslora=scaling == "alpha/sqrt(r)",
        target_modules=r".*blocks\.\d+\.(attn\.(qkv|proj)|mlp\.(fc1|fc2))"))
    peft_layers = {n.removeprefix("base_model.model."): m for n, m in theirs.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A}
    assert set(peft_layers) == set(at.lora_layers(ours))
    with torch.no_grad():
        for name, layer in at.lora_layers(ours).items():
            peft_layers[name].lora_A["default"].weight.copy_(layer.lora_A)
            peft_layers[name].lora_B["default"].weight.copy_(layer.lora_B)
            assert peft_layers[name].scaling["default"] == pytest.approx(layer.scale)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), theirs.eval()(x), atol=1e-5, rtol=1e-5)
        merged_peft = theirs.merge_and_unload()
        merged_ours = at.merge_lora(ours)
    for (k, a), (k2, b) in zip(merged_ours.state_dict().items(), merged_peft.state_dict().items()):
        assert k == k2
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    # lora_A is drawn as peft and the LoRA reference code draw it: Kaiming-uniform, bound 1/sqrt(in)
    fresh = at.LoRALinear(nn.Linear(192, 10), rank=64)
    assert fresh.lora_A.abs().max() <= 1 / math.sqrt(192) and fresh.lora_A.abs().max() > 0.9 / math.sqrt(192)


def test_a_lora_run_goes_through_the_engine_and_its_key_names_its_settings(tmp_path):
    base = RunConfig(method="lora", dataset="digits", n_train=64, rank=2, recipe=at.Recipe(epochs=1, lr=1e-2))
    assert base.key() != base.replace(lora_alpha=4.0).key() != base.replace(lora_alpha=4.0, lora_scaling="fixed").key()
    assert base.key() == base.replace(placement="houlsby").key()  # adapter settings cannot change a LoRA run
    assert base.key() != base.replace(rank=4).key()
    head = RunConfig(method="head_only", dataset="digits", n_train=64, recipe=at.Recipe(epochs=1))
    assert head.key() == head.replace(lora_alpha=4.0, rank=8).key()
    assert "lora_alpha" not in RunConfig().to_dict()  # later fields stay out of every earlier run's dict
    result = at.run(base, progress=False)
    assert result["trainable_params"] == 6 * 16 * 192 * 2 + 192 * 10 + 10
    assert RunConfig.from_dict(result["config"]).key() == base.key()
    bitfit = at.run(RunConfig(method="bitfit", dataset="digits", n_train=64, recipe=at.Recipe(epochs=1)), progress=False)
    assert 0 < bitfit["fraction_of_full"] < 0.01


def test_fit_with_lora_trains_B_and_A_and_leaves_the_frozen_weights_bitwise_alone():
    model = at.add_lora(at.load_backbone("kit_vit_tiny", num_classes=10), rank=2)
    data = at.load_dataset("digits", model, n_train=64)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n and not n.startswith("head.")}
    A0 = model.blocks[0].attn.qkv.lora_A.detach().clone()
    at.fit(model, data.train, method="lora", recipe=at.Recipe(epochs=1, lr=1e-2), progress=False)
    layer = model.blocks[0].attn.qkv
    assert layer.lora_B.abs().sum() > 0 and not torch.equal(layer.lora_A.detach(), A0)
    assert all(torch.equal(p.detach(), frozen[n]) for n, p in model.named_parameters() if n in frozen)
