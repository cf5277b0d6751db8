"""Drift measures: CKA is 1 for identical features, invariant to rotation, lower after damage."""

import copy

import pytest
import torch
from helpers import tiny_vit

import adaptertune_lite as at
from adaptertune_lite.drift import block_cka, linear_cka


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
