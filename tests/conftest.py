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


@pytest.fixture(scope="session")
def course_runs(tmp_path_factory):
    """One FAST run cache for the session, shared as the course shares one between its notebooks (a run is keyed by
    its config, so a notebook that asks for another's runs loads them instead of training them again). The browser
    test and the notebook tests use it; every other test keeps its own folder."""
    return tmp_path_factory.mktemp("course_runs")


def pytest_collection_modifyitems(items):
    """The browser test last: by then the notebook tests have filled the shared course cache, so the notebook it
    opens loads its runs and only what the student asks for live is trained in the browser."""
    items.sort(key=lambda item: item.fspath.basename == "test_lab.py")  # a stable sort: the rest keep their order
