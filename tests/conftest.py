"""Fixtures shared by every test file (plain helpers live in helpers.py)."""

import pytest
import torch

from helpers import tiny_vit


@pytest.fixture
def vit():
    return tiny_vit().eval()


@pytest.fixture
def images():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
