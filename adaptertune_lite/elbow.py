"""The elbow of an accuracy-against-rank curve: a saturating power law fitted to it, and a stated rule.

Why this form: in the excess-risk view, the approximation error of a rank-``r`` adapter falls
as a power of ``r`` (``a - b r^-c``; ``a`` is what a much larger adapter would reach), while the
estimation error grows with the parameter count over the number of training images; at a fixed
training-set size the first dominates on a small grid, so the curve saturates.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit


@dataclass(frozen=True)
class ElbowFit:
    """``acc(r) = a - b * r**(-c)``, fitted to mean accuracy against rank, and the elbow of the data.

    ``elbow`` is the smallest swept rank from which going up to the largest swept rank
    (``max_rank``) gains less than ``threshold`` mean accuracy.
    """

    a: float
    b: float
    c: float
    elbow: int
    max_rank: int
    threshold: float

    def __call__(self, r) -> np.ndarray:
        return self.a - self.b * np.asarray(r, dtype=float) ** (-self.c)


def fit_elbow(ranks: Sequence[int], accuracies, threshold: float = 0.01) -> ElbowFit:
    """Fit a saturating power law to accuracy against rank, and mark the elbow by a stated rule.

    Why this form: in the excess-risk view, the approximation error of a rank-``r`` adapter falls
    as a power of ``r`` (``a - b r^-c``; ``a`` is what a much larger adapter would reach), while
    the estimation error grows with the parameter count over the number of training images; at a
    fixed training-set size the first dominates on a small grid, so the curve saturates.

    Rule for the elbow, on the measured means (the fit shows the shape, but a 3-parameter power
    law bends more slowly than real curves often do): the smallest swept rank ``r`` with
    ``acc(max rank) - acc(r) < threshold``: every rank beyond it buys less than ``threshold``.

    Args:
        ranks: the ranks swept, ascending.
        accuracies: ``(len(ranks),)`` or ``(len(ranks), n_seeds)`` accuracies in [0, 1]; seeds are averaged.
        threshold: what counts as "less" (0.01 = 1 point).
    """
    r = np.asarray(ranks, dtype=float)
    acc = np.asarray(accuracies, dtype=float).reshape(len(r), -1).mean(1)
    if len(r) < 3:
        raise ValueError(f"fit_elbow needs at least 3 ranks to fit 3 parameters, got {len(r)}.")
    if not threshold > 0:
        raise ValueError(f"threshold is an accuracy gain > 0 (0.01 = 1 point), not {threshold}.")
    f = lambda x, a, b, c: a - b * x ** (-c)  # noqa: E731
    guess = (min(acc.max(), 1.0), max(acc.max() - acc.min(), 1e-3), 0.5)
    with warnings.catch_warnings():  # 3 ranks fit 3 parameters exactly: no covariance, which is not used
        warnings.simplefilter("ignore", OptimizeWarning)
        (a, b, c), _ = curve_fit(f, r, acc, p0=guess, bounds=([0, 0, 1e-3], [1, 2, 5]), maxfev=20_000)
    elbow = next(int(x) for x, y in zip(r, acc) if acc[-1] - y < threshold)  # the last rank always qualifies
    return ElbowFit(float(a), float(b), float(c), elbow, int(r[-1]), threshold)


@dataclass(frozen=True)
class RobustElbow:
    """The smallest swept rank whose mean accuracy reaches ``share`` of the gain from the smallest to the largest
    swept rank, with a bootstrap interval over seeds (``low``/``high``: NaN with one seed)."""

    rank: int
    low: float
    high: float
    share: float
    n_seeds: int
    max_rank: int

    def sentence(self) -> str:
        """One line for a notebook."""
        interval = (f"bootstrap 95 % interval over {self.n_seeds} seeds: r = {self.low:g} to {self.high:g}" if self.n_seeds > 1
                    else "one seed: no interval")
        where = f"at r = {self.rank}" if self.rank < self.max_rank else f"only at the largest rank swept, r = {self.rank} (no elbow within the grid)"
        return f"{100 * self.share:.0f} % of the gain from the smallest to the largest rank is reached {where} ({interval})."


def _share_rank(ranks: np.ndarray, mean: np.ndarray, share: float) -> int:
    target = mean[0] + share * (mean[-1] - mean[0])
    return int(next(r for r, m in zip(ranks, mean) if m >= target))  # the largest rank always qualifies


def robust_elbow(ranks: Sequence[int], accuracies, share: float = 0.9, n_boot: int = 2000, seed: int = 0) -> RobustElbow:
    """Where the curve bends, without trusting one grid point: the smallest rank reaching ``share`` of the gain
    from ``ranks[0]`` to ``ranks[-1]``, on the mean over seeds; its interval resamples the seeds with replacement.

    Args:
        ranks: the ranks swept, ascending.
        accuracies: ``(len(ranks), n_seeds)`` accuracies (a seed's runs at every rank form one column).
        share: the part of the gain that counts as "most of it" (0.9: 90 %).
        n_boot, seed: bootstrap resamples and their random seed.
    """
    r = np.asarray(ranks)
    acc = np.asarray(accuracies, dtype=float).reshape(len(r), -1)
    if len(r) < 2 or not 0 < share < 1:
        raise ValueError(f"robust_elbow needs >= 2 ranks and 0 < share < 1 (got {len(r)} ranks, share {share}).")
    rank = _share_rank(r, acc.mean(1), share)
    n = acc.shape[1]
    if n == 1:
        return RobustElbow(rank, float("nan"), float("nan"), share, 1, int(r[-1]))
    rng = np.random.default_rng(seed)
    boot = [_share_rank(r, acc[:, rng.integers(0, n, n)].mean(1), share) for _ in range(n_boot)]
    low, high = np.percentile(boot, [2.5, 97.5], method="nearest")
    return RobustElbow(rank, float(low), float(high), share, n, int(r[-1]))
