"""Shared tiny models. Everything here builds in milliseconds on a CPU."""

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer


def tiny_vit(num_classes: int = 10, depth: int = 4, dim: int = 32, seed: int = 0) -> VisionTransformer:
    """A 4-block, 32-wide ViT on 32x32 images (8x8 patches): the smallest real timm ViT."""
    torch.manual_seed(seed)
    return VisionTransformer(img_size=32, patch_size=8, embed_dim=dim, depth=depth, num_heads=2, num_classes=num_classes)


@pytest.fixture
def vit():
    return tiny_vit().eval()


@pytest.fixture
def images():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
