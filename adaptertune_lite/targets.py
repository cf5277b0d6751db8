"""Offline targets that need adaptation, composed from shipped digits.

``left_digit`` (the course default) and ``max_digit`` put two mnist5k digits side by side on one
32x32 canvas. The frozen features mix the two digits into one pooled vector, so a linear head on
them falls short of fine-tuning; this is where adapters earn their keep. ``data.load_dataset``
builds them from its mnist5k source and its fixed splits; everything here is a plain function of
arrays.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

PAIR_SEED = 1  # which digit sits beside which; fixed, like the splits
CLASSES = [str(i) for i in range(10)]


def shrink(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``(N, 1, H, W)`` -> uint8 ``(N, 1, size, size)``, antialiased bilinear."""
    x = F.interpolate(torch.from_numpy(images).float(), size=(size, size), mode="bilinear", antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8).numpy()


def digit_pairs(images: np.ndarray, labels: np.ndarray, splits: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every digit paired with a partner digit, side by side on a 32x32 canvas.

    Image ``i`` holds digit ``i`` (``images`` uint8 ``(N, 1, 28, 28)``, shrunk to 16x16) in the left half
    and digit ``right[i]`` in the right half, both vertically centred. The partner comes from the same
    part of ``splits`` (index arrays: train / val / test) as digit ``i``, and each digit is the partner
    of exactly one other, so no source image ever appears in two splits.

    Returns ``(images uint8 (N, 1, 32, 32), left_labels (N,), right_labels (N,))``.
    """
    small = shrink(images, 16)  # (N, 1, 16, 16)
    right = np.empty(len(labels), dtype=np.int64)
    rng = np.random.default_rng(PAIR_SEED)
    for part in splits:
        order = rng.permutation(part)
        right[order] = np.roll(order, 1)  # a cycle through the split: nobody is its own partner
    canvas = np.zeros((len(labels), 1, 32, 32), dtype=np.uint8)
    canvas[:, :, 8:24, :16] = small
    canvas[:, :, 8:24, 16:] = small[right]
    return canvas, labels, labels[right]


def left_digit(pairs: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``left_digit``: name the digit on the left; the one on the right is a distractor.

    Why a frozen linear probe struggles: the backbone was pretrained to name one shape per
    image, and its pooled [CLS] vector mixes both digits. Which digit is on the *left* is not
    linearly readable from that mixture; adapters can re-route attention so the pooled vector
    reads the left half. A linear model on raw pixels does far better than the frozen probe
    (the positions are fixed), which shows the limit is in the features, not in the task.
    """
    images, left, _ = pairs
    return images, left, CLASSES


def max_digit(pairs: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``max_digit``: name the larger of the two digits (classes 0-9, skewed towards 9).

    Why a frozen linear probe struggles: the label is a comparison of two digits, a relation
    neither the pretraining nor a linear map of the pooled features (nor of the pixels) computes;
    the features must first be changed to identify both digits separately.
    """
    images, left, right = pairs
    return images, np.maximum(left, right), CLASSES


COMPOSED = {"left_digit": left_digit, "max_digit": max_digit}
