"""Plotting: one style for every figure in the course, and pure functions that draw on an Axes."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np


def use_style() -> None:
    """The course's figure style (seaborn 'whitegrid', readable fonts); call once per notebook."""
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook", palette="colorblind")
    plt.rcParams.update({"figure.figsize": (6.4, 4.0), "figure.dpi": 100, "axes.titleweight": "bold"})


def plot_elbow(
    ranks: Sequence[int],
    accuracies: np.ndarray,
    ax: plt.Axes | None = None,
    label: str = "AdapterTune",
    references: dict[str, float] | None = None,
    fit=None,
) -> plt.Axes:
    """Accuracy against adapter rank (log2 x-axis), mean ± std over seeds.

    Args:
        ranks: the ranks swept, e.g. ``[1, 2, 4, ..., 64]``.
        accuracies: ``(len(ranks), n_seeds)`` accuracies in [0, 1].
        references: horizontal lines, e.g. ``{"head-only": 0.71, "full fine-tuning": 0.93}``.
        fit: an :class:`~adaptertune_lite.experiments.ElbowFit`: draws the fitted curve and marks its elbow.
    """
    ax = ax or plt.gca()
    acc = 100 * np.asarray(accuracies, dtype=float).reshape(len(ranks), -1)
    mean, std = acc.mean(1), acc.std(1)
    ax.errorbar(ranks, mean, yerr=std, marker="o", capsize=3, label=f"{label} (mean ± std, {acc.shape[1]} seed{'s' if acc.shape[1] > 1 else ''})")
    if fit is not None:
        dense = np.geomspace(min(ranks), max(ranks), 100)
        ax.plot(dense, 100 * fit(dense), color="C0", alpha=0.5, lw=2,
                label=f"fit: {100 * fit.a:.1f} − {100 * fit.b:.1f}·r^−{fit.c:.2f} (%)")
        if fit.elbow < fit.max_rank:
            ax.axvline(fit.elbow, color="C3", ls=":", lw=2,
                       label=f"elbow r={fit.elbow}: up to r={fit.max_rank} adds < {100 * fit.threshold:g} point")
        else:  # the rule found no rank from which the rest of the grid adds less than the threshold
            ax.plot([], [], " ", label=f"no elbow up to r={fit.max_rank}: still rising ≥ {100 * fit.threshold:g} point")
    for i, (name, value) in enumerate((references or {}).items()):
        ax.axhline(100 * value, ls="--", lw=1, color=f"C{i + 1}", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(ranks), [str(r) for r in ranks])
    ax.set_xlabel("adapter rank r (bottleneck width)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(loc="lower right", fontsize="small")
    return ax
