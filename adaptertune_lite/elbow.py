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
    swept rank, and what that summary can and cannot say:

    * ``gain``: mean accuracy at the largest rank minus at the smallest; ``noise``: two standard errors of that gain
      (over seeds, and over the test images when ``n_test`` was given), ``None`` when neither could be estimated;
      ``rises``: whether the gain exceeds its noise. A curve that does not rise has no elbow to name.
    * ``per_seed``: each seed's own elbow (with 3 seeds a bootstrap has 10 distinct resamples: no 95 % interval).
    * ``without_largest``: the elbow with the largest rank left out (``None`` if fewer than 3 ranks): a summary that
      moves with one endpoint says so.
    """

    rank: int
    per_seed: tuple[int, ...]
    share: float
    n_seeds: int
    min_rank: int
    max_rank: int
    gain: float
    noise: float | None
    without_largest: int | None

    @property
    def rises(self) -> bool:
        return self.gain > 0 and (self.noise is None or self.gain > self.noise)

    @property
    def low(self) -> float:
        """The smallest per-seed elbow (NaN with one seed)."""
        return float(min(self.per_seed)) if self.n_seeds > 1 else float("nan")

    @property
    def high(self) -> float:
        """The largest per-seed elbow (NaN with one seed)."""
        return float(max(self.per_seed)) if self.n_seeds > 1 else float("nan")

    def sentence(self) -> str:
        """One line for a notebook: the elbow with its caveats, or why there is none to name."""
        noise = ("noise unknown: one seed and no test-set size" if self.noise is None
                 else f"noise ±{100 * self.noise:.1f} points")
        gain = f"{100 * self.gain:+.1f} points from r = {self.min_rank} to r = {self.max_rank}, {noise}"
        if not self.rises:
            return f"No gain to summarise: accuracy changes by {gain}, so there is no elbow to name."
        where = f"at r = {self.rank}" if self.rank < self.max_rank else f"only at the largest rank swept, r = {self.rank} (no elbow within the grid)"
        seeds = (f"per-seed elbows r = {', '.join(map(str, self.per_seed))}" if self.n_seeds > 1 else "one seed")
        moved = ("" if self.without_largest is None else f"; r = {self.without_largest} with the largest rank left out"
                 + (" (it depends on that endpoint)" if self.without_largest != self.rank else ""))
        return f"{100 * self.share:.0f} % of the gain from the smallest to the largest rank is reached {where} ({gain}; {seeds}{moved})."


def _share_rank(ranks: np.ndarray, mean: np.ndarray, share: float) -> int:
    target = mean[0] + share * (mean[-1] - mean[0])
    return int(next(r for r, m in zip(ranks, mean) if m >= target))  # the largest rank always qualifies


def gain_noise(accuracies, n_test: int | None = None) -> float | None:
    """Two standard errors of the gain from the first to the last row of ``accuracies`` ``(n_ranks, n_seeds)``:
    the spread of the per-seed gains over the seeds, plus, with ``n_test``, the binomial noise of the two accuracies
    on a test set of that size (the same test set for every seed, so averaging seeds does not reduce it; counted as if
    the two were independent, which errs on the wide side). ``None`` with one seed and no ``n_test``."""
    acc = np.asarray(accuracies, dtype=float)
    d, var, known = acc[-1] - acc[0], 0.0, False
    if len(d) > 1:
        var, known = var + d.var(ddof=1) / len(d), True
    if n_test:
        p0, p1 = acc[0].mean(), acc[-1].mean()
        var, known = var + (p0 * (1 - p0) + p1 * (1 - p1)) / n_test, True
    return 2 * float(np.sqrt(var)) if known else None


def robust_elbow(ranks: Sequence[int], accuracies, share: float = 0.9, n_test: int | None = None) -> RobustElbow:
    """Where the curve bends, without trusting one grid point: the smallest rank reaching ``share`` of the gain
    from ``ranks[0]`` to ``ranks[-1]``, on the mean over seeds, with what can undo it (:class:`RobustElbow`).

    Args:
        ranks: the ranks swept, ascending.
        accuracies: ``(len(ranks), n_seeds)`` accuracies (a seed's runs at every rank form one column).
        share: the part of the gain that counts as "most of it" (0.9: 90 %).
        n_test: the size of the set the accuracies were measured on (its binomial noise enters ``noise``).
    """
    r = np.asarray(ranks)
    acc = np.asarray(accuracies, dtype=float).reshape(len(r), -1)
    if len(r) < 2 or not 0 < share < 1:
        raise ValueError(f"robust_elbow needs >= 2 ranks and 0 < share < 1 (got {len(r)} ranks, share {share}).")
    mean = acc.mean(1)
    per_seed = tuple(_share_rank(r, acc[:, j], share) for j in range(acc.shape[1]))
    without = _share_rank(r[:-1], mean[:-1], share) if len(r) >= 3 and mean[-2] > mean[0] else None
    return RobustElbow(_share_rank(r, mean, share), per_seed, share, acc.shape[1], int(r[0]), int(r[-1]),
                       float(mean[-1] - mean[0]), gain_noise(acc, n_test), without)
