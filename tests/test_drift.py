"""Drift measures: CKA is 1 for identical features, invariant to rotation, lower after damage."""

import copy

import pytest
import torch

import adaptertune_lite as at
from adaptertune_lite.drift import block_cka, block_outputs, linear_cka
from helpers import tiny_vit


def test_linear_cka_basics():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 16, generator=g)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 3 * x @ q) == pytest.approx(1.0)  # rotation and scale do not count as drift
    assert linear_cka(x, torch.randn(200, 16, generator=g)) < 0.3
    with pytest.raises(ValueError, match="same examples"):
        linear_cka(x, x[:10])


def test_zero_init_has_no_drift_random_init_has(images):
    base = tiny_vit().eval()
    zero = at.add_adapters(copy.deepcopy(base), rank=4, init="zero")
    rand = at.add_adapters(copy.deepcopy(base), rank=4, init="random", scale=4.0)
    assert block_cka(zero, base, images) == pytest.approx([1.0] * 4)
    assert min(block_cka(rand, base, images)) < 0.999


def test_cls_cka_compares_the_cls_token_only_and_the_mode_is_restored(images):
    base = tiny_vit().train()
    rand = at.add_adapters(copy.deepcopy(base), rank=4, init="random", scale=4.0).train()
    every, cls = block_outputs(rand, images, "all"), block_outputs(rand, images, "cls")
    assert [tuple(t.shape) for t in cls] == [(len(images), 32)] * 4
    assert every[0].shape[0] == len(images) * (1 + 16)  # CLS + 16 patches of 8x8 in a 32x32 image
    assert torch.equal(cls[2], every[2].view(len(images), 17, 32)[:, 0])
    values = block_cka(rand, base, images, tokens="cls")
    assert len(values) == 4 and values != block_cka(rand, base, images)
    assert rand.training and base.training  # measured in eval mode, handed back in train mode
    with pytest.raises(ValueError, match="'all' or 'cls'"):
        block_cka(rand, base, images, tokens="patches")
