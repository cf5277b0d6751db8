"""A reference point that is not a method of the course: logistic regression on the raw pixels.

A linear probe on a backbone's frozen features is worth something only where it beats a linear model on the
pixels themselves; notebook 04 and the kit benchmark (``benchmarks/kit_backbone.py``) show this baseline beside
head-only, on the same training images.
"""

from __future__ import annotations

import time

from .data import load_dataset


def pixel_logreg(dataset: str, n_train: int | None = None) -> dict:
    """Logistic regression (scikit-learn, default settings, one deterministic fit) on the raw grey pixels of
    ``dataset`` at its own size, trained on the same ``n_train`` subset a run of the engine uses (seed 0).
    Returns ``{"test_acc", "wall_time_s"}``."""
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415  (scikit-learn takes a second to import: only when asked)

    data = load_dataset(dataset, n_train=n_train)
    flat = lambda split: split.images[:, 0].flatten(1).float().numpy() / 255  # noqa: E731  (N, H*W): one grey channel
    start = time.perf_counter()
    clf = LogisticRegression(max_iter=2000).fit(flat(data.train), data.train.labels.numpy())
    return {"test_acc": float(clf.score(flat(data.test), data.test.labels.numpy())), "wall_time_s": time.perf_counter() - start}
