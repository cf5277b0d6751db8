"""Backbones: timm ViTs fail fast offline with a helpful message; kit weights are verified."""

import time

import pytest
import torch
from safetensors.torch import save_file

import adaptertune_lite as at
from adaptertune_lite import backbones
from adaptertune_lite.backbones import KitBackbone
from helpers import skip_if_online


def test_random_timm_vit_with_a_new_head():
    model = at.load_backbone("deit_tiny_patch16_224", num_classes=7, pretrained=False)
    assert model.head.out_features == 7 and len(model.blocks) == 12


def test_pretrained_timm_vit_fails_fast_offline_and_says_what_to_do():
    skip_if_online()
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="kit_vit_tiny") as err:
        at.load_backbone("vit_small_patch16_224", num_classes=10, pretrained=True)
    assert "weights_file" in str(err.value)
    assert time.perf_counter() - start < 20  # timm alone retries for ~50 s here


def test_local_weights_file_is_used_instead_of_the_hub(tmp_path):
    source = at.load_backbone("deit_tiny_patch16_224", pretrained=False)
    save_file(source.state_dict(), tmp_path / "model.safetensors")
    model = at.load_backbone("deit_tiny_patch16_224", num_classes=1000, weights_file=tmp_path / "model.safetensors")
    assert torch.equal(model.blocks[0].attn.qkv.weight, source.blocks[0].attn.qkv.weight)


def test_unknown_backbone_names_the_choices():
    with pytest.raises(ValueError, match="kit_vit_tiny"):
        at.load_backbone("resnet_of_dreams", num_classes=10)


def test_kit_backbone_without_weights_says_how_to_build_them(monkeypatch, tmp_path):
    monkeypatch.setattr(backbones, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="adaptertune-lite pretrain"):
        at.load_backbone("kit_vit_tiny", num_classes=10)
    assert at.load_backbone("kit_vit_tiny", num_classes=10, pretrained=False).num_classes == 10


def test_kit_backbone_is_a_timm_vit_with_its_data_config():
    model = at.load_backbone("kit_vit_tiny", num_classes=10, pretrained=False)
    assert model.pretrained_cfg["input_size"] == (3, 32, 32) and model.pretrained_cfg["architecture"] == "kit_vit_tiny"
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert all(block.attn.fused_attn for block in model.blocks)  # timm's fused scaled_dot_product_attention


def test_damaged_kit_weights_are_refused(monkeypatch, tmp_path):
    kit = KitBackbone(name="kit_vit_tiny", img_size=32, patch_size=8, embed_dim=16, depth=1, num_heads=2, pretrain_classes=4)
    monkeypatch.setitem(backbones.KIT_BACKBONES, "kit_vit_tiny", kit)
    monkeypatch.setattr(backbones, "WEIGHTS_DIR", tmp_path)
    save_file(kit.build().state_dict(), tmp_path / "kit_vit_tiny.safetensors")
    (tmp_path / "kit_vit_tiny.json").write_text('{"sha256": "0000"}')
    with pytest.raises(ValueError, match="damaged"):
        at.load_backbone("kit_vit_tiny", num_classes=10)


def test_the_kit_weights_are_hashed_once_per_process_not_on_every_run(monkeypatch):
    """load_backbone used to re-hash 11 MB of kit weights on every run of a sweep."""
    calls = []
    real = at.backbones.sha256_of
    monkeypatch.setattr(at.backbones, "sha256_of", lambda path: calls.append(path) or real(path))
    at.backbones._verify.cache_clear()
    for _ in range(3):
        at.load_backbone("kit_vit_tiny", num_classes=10)
    assert len(calls) == 1
