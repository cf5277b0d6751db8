"""The pretraining script, end to end in a tiny configuration (the shipped weights come from the same code)."""

import json
import subprocess
import sys
from dataclasses import asdict

import pytest
import torch
from safetensors.torch import load_file

from adaptertune_lite import kit_provenance
from adaptertune_lite.backbones import KIT_BACKBONES, sha256_of
from adaptertune_lite.course.pretrain import PretrainConfig, pretrain


@pytest.mark.slow
def test_pretrain_cli_writes_weights_and_provenance(tmp_path):
    cmd = [sys.executable, "-m", "adaptertune_lite.course.cli", "pretrain", "--n-fractal", "3", "--n-glyph", "3",
           "--steps", "6", "--batch-size", "16", "--warmup-steps", "2", "--eval-every", "3", "--eval-per-class", "2",
           "--out", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    weights, prov = tmp_path / "kit_vit_tiny.safetensors", json.loads((tmp_path / "kit_vit_tiny.json").read_text())
    assert prov["sha256"] == sha256_of(weights)
    assert prov["recipe"]["steps"] == 6 and prov["images_seen"] == 96 and [c["step"] for c in prov["curve"]] == [3, 6]
    assert 0 <= prov["heldout_accuracy"] <= 1 and prov["generator"]["version"]
    model = KIT_BACKBONES["kit_vit_tiny"].build(num_classes=6)
    model.load_state_dict(load_file(weights))  # a complete kit backbone, pretraining head included
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 6)


def test_shipping_a_head_of_the_wrong_size_is_refused():
    with pytest.raises(ValueError, match="--out"):
        pretrain(PretrainConfig(n_fractal=2, n_glyph=2, steps=1))


def test_the_default_recipe_is_the_one_that_made_the_shipped_kit_vit_tiny():
    # `adaptertune-lite pretrain` with no options rebuilds the shipped default backbone.
    assert asdict(PretrainConfig()) == kit_provenance("kit_vit_tiny")["recipe"]
