"""Helpers shared by the tests: tiny models, pyproject, and whether the Hub is reachable.

Everything here builds in milliseconds on a CPU; nothing touches the network at import time.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from adaptertune_lite.backbones import hub_reachable

ROOT = Path(__file__).resolve().parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (pyproject allows it): the same parser, as the tomli package (in the test extra)
    import tomli as tomllib


def tiny_vit(num_classes: int = 10, depth: int = 4, dim: int = 32, seed: int = 0) -> VisionTransformer:
    """A 4-block, 32-wide ViT on 32x32 images (8x8 patches): the smallest real timm ViT."""
    torch.manual_seed(seed)
    return VisionTransformer(img_size=32, patch_size=8, embed_dim=dim, depth=depth, num_heads=2, num_classes=num_classes)


def pyproject() -> dict:
    """The parsed pyproject.toml."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@functools.lru_cache(maxsize=None)
def _online() -> bool:
    return hub_reachable()


def skip_if_online() -> None:
    """Skip the calling test when the Hugging Face Hub is reachable (it checks the offline error).
    Asked when the test runs, not when the file is imported."""
    if _online():
        pytest.skip("online: this checks the offline error")
