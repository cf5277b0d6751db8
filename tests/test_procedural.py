"""The procedural pretraining images: deterministic, varied within a class, different across classes."""

import torch

from adaptertune_lite.procedural import ProceduralImages


def test_same_seed_same_images():
    a = ProceduralImages(4, 4, seed=3).sample(16, torch.Generator().manual_seed(0))
    b = ProceduralImages(4, 4, seed=3).sample(16, torch.Generator().manual_seed(0))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_images_are_uint8_and_show_a_shape():
    gen = ProceduralImages(3, 3, img_size=32, seed=0)
    x = gen.render(torch.arange(6), torch.Generator().manual_seed(0))
    assert x.shape == (6, 3, 32, 32) and x.dtype == torch.uint8
    spread = x.float().flatten(1).std(1)
    assert (spread > 10).all()  # not a blank canvas


def test_instances_vary_but_classes_differ_more():
    gen = ProceduralImages(8, 8, img_size=32, seed=0)
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(16).repeat_interleave(2)
    ink = gen.render(labels, g).float().mean(1).flatten(1)  # (32, 1024) grey images
    ink = (ink - ink.mean(1, keepdim=True)) / ink.std(1, keepdim=True)
    corr = ink @ ink.T / ink.shape[1]
    same = corr[torch.arange(0, 32, 2), torch.arange(1, 32, 2)]
    assert not torch.allclose(ink[0], ink[1])  # two instances of a class are different images
    off = corr[~torch.eye(32, dtype=bool) & (labels[:, None] != labels[None])]
    assert same.mean() > off.mean() + 0.1


def test_one_family_alone():
    """Either family may be left out: n_fractal=0 gives glyph classes only, n_glyph=0 fractal classes only."""
    for n_fractal, n_glyph in ((0, 3), (3, 0)):
        gen = ProceduralImages(n_fractal, n_glyph, img_size=16, seed=0)
        x, y = gen.sample(6, torch.Generator().manual_seed(0))
        assert gen.num_classes == 3 and x.shape == (6, 3, 16, 16) and set(y.tolist()) <= {0, 1, 2}
