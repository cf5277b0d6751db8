"""Is a difference between two methods real? Paired differences over seeds, a t interval, and the sentence.

Two methods run with the same seeds share data order and initialisation draws, so their accuracies are
*paired*: the seed-to-seed noise they share cancels in the per-seed difference ``a_i − b_i``. With ``n``
seeds the mean difference has a Student-t interval ``mean ± t(0.975, n−1) · sd / √n``; a difference is
reported only when that interval excludes zero (and ``n ≥ 3``), otherwise "no difference detected at this
budget". Every printed comparison in the notebooks goes through :func:`paired_difference`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as scipy_stats

MIN_SEEDS = 3  # fewer seeds than this never make a difference


@dataclass(frozen=True)
class PairedDifference:
    """``a − b`` over paired seeds: ``mean``, the interval ``[low, high]`` at ``confidence``, ``n`` seeds."""

    mean: float
    low: float
    high: float
    n: int
    confidence: float

    @property
    def detected(self) -> bool:
        """A difference: at least :data:`MIN_SEEDS` seeds and an interval that excludes zero."""
        return self.n >= MIN_SEEDS and (self.low > 0 or self.high < 0)

    def sentence(self, a: str, b: str, unit: str = " points", scale: float = 100.0) -> str:
        """One line for a notebook, e.g. ``"AdapterTune − LoRA: +1.9 points, 95 % CI [+0.4, +3.4], 3 seeds:
        AdapterTune is higher."`` or ``"... no difference detected at this budget."`` (values × ``scale``)."""
        pct = f"{100 * self.confidence:.0f} %"
        interval = "no interval" if math.isnan(self.low) else f"{pct} CI [{scale * self.low:+.1f}, {scale * self.high:+.1f}]"
        numbers = f"{a} − {b}: {scale * self.mean:+.1f}{unit}, {interval}, {self.n} seed{'s' * (self.n != 1)}"
        if not self.detected:
            why = f" (fewer than {MIN_SEEDS} seeds)" if self.n < MIN_SEEDS else ""
            return f"{numbers}: no difference detected at this budget{why}."
        return f"{numbers}: {a if self.mean > 0 else b} is higher."


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> PairedDifference:
    """The paired difference ``a − b`` (same seeds, same order) with its Student-t interval."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape or len(a) == 0:
        raise ValueError(f"paired_difference needs two equally long, non-empty lists of per-seed values (got {a.shape} and {b.shape}).")
    d = a - b
    n, mean = len(d), float(d.mean())
    if n < 2:
        return PairedDifference(mean, math.nan, math.nan, n, confidence)
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, n - 1) * d.std(ddof=1) / math.sqrt(n))
    return PairedDifference(mean, mean - half, mean + half, n, confidence)
