"""Plotting: one style for every figure in the course, and every figure function (pure: results in, figure out).

The widgets in ``adaptertune_lite.course.widgets`` redraw these; a notebook draws them first, so each figure is
there wherever widgets do not render.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..elbow import fit_elbow, robust_elbow
from . import experiments


def use_style() -> None:
    """The course's figure style (seaborn 'whitegrid', readable fonts); call once per notebook."""
    sns.set_theme(style="whitegrid", context="notebook", palette="colorblind")
    plt.rcParams.update({"figure.figsize": (6.4, 4.0), "figure.dpi": 100, "axes.titleweight": "bold"})


def plot_elbow(
    ranks: Sequence[int],
    accuracies: np.ndarray,
    ax: plt.Axes | None = None,
    label: str = "AdapterTune",
    references: dict[str, float] | None = None,
    fit=None,
    elbow=None,
) -> plt.Axes:
    """Accuracy against adapter rank (log2 x-axis), mean ± std over seeds.

    Args:
        ranks: the ranks swept, e.g. ``[1, 2, 4, ..., 64]``.
        accuracies: ``(len(ranks), n_seeds)`` accuracies in [0, 1].
        references: horizontal lines, e.g. ``{"head-only": 0.71, "full fine-tuning": 0.93}``.
        fit: an :class:`~adaptertune_lite.elbow.ElbowFit`: draws the fitted curve.
        elbow: a :class:`~adaptertune_lite.elbow.RobustElbow`: marks it, with the range of the per-seed elbows.
    """
    ax = ax or plt.gca()
    acc = 100 * np.asarray(accuracies, dtype=float).reshape(len(ranks), -1)
    mean, std = acc.mean(1), acc.std(1)
    ax.errorbar(ranks, mean, yerr=std, marker="o", capsize=3, label=f"{label} (mean ± std, {acc.shape[1]} seed{'s' if acc.shape[1] > 1 else ''})")
    if fit is not None:
        dense = np.geomspace(min(ranks), max(ranks), 100)
        ax.plot(dense, 100 * fit(dense), color="C0", alpha=0.5, lw=2,
                label="fitted curve (a power law in r that levels off)")
    if elbow is not None and not elbow.rises:
        ax.plot([], [], " ", label="no gain beyond the noise: no elbow to name")
    elif elbow is not None and elbow.rank < elbow.max_rank:
        if elbow.n_seeds > 1:  # the span of the seeds' own elbows (a single line where they agree)
            ax.axvspan(elbow.low, elbow.high, color="C3", alpha=0.1, label=f"the {elbow.n_seeds} seeds' own elbows: r = "
                       + (f"{elbow.low:g}" if elbow.low == elbow.high else f"{elbow.low:g} to {elbow.high:g}"))
        ax.axvline(elbow.rank, color="C3", ls=":", lw=2, label=f"elbow r={elbow.rank}: {100 * elbow.share:.0f} % of the gain")
    elif elbow is not None:
        ax.plot([], [], " ", label=f"no elbow up to r={elbow.max_rank}: the gain comes at the largest rank")
    for i, (name, value) in enumerate((references or {}).items()):
        ax.axhline(100 * value, ls="--", lw=1, color=f"C{i + 1}", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(ranks), [str(r) for r in ranks])
    ax.set_xlabel("adapter rank r (bottleneck width)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(loc="lower right", fontsize="small")
    return ax


def elbow_figure(results: Sequence[dict], title: str = "", metric: str = "test_acc", threshold: float = 0.01,
                 references: dict[str, float] | None = None, ax: plt.Axes | None = None) -> plt.Figure:
    """Accuracy against rank from sweep ``results``, with the fitted saturating curve
    (:func:`~adaptertune_lite.elbow.fit_elbow`) once there are at least 3 ranks, and the elbow
    (:func:`~adaptertune_lite.elbow.robust_elbow`: the first rank with 90 % of the gain) with its interval."""
    ranks, acc = experiments.by_rank(results, metric)
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4.2))
    fig = ax.figure
    fit = fit_elbow(ranks, acc, threshold) if len(ranks) >= 3 else None
    plot_elbow(ranks, acc, ax=ax, fit=fit, elbow=robust_elbow(ranks, acc) if len(ranks) >= 2 else None, references=references)
    ax.set_ylabel(f"{'validation' if metric == 'val_acc' else 'test'} accuracy (%)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def lecture_figure(results: Sequence[dict], highlight: int, full_params: int, title: str = "") -> plt.Figure:
    """The lecture's elbow: large fonts, the fitted curve, and one rank ``highlight``ed with its accuracy and
    its parameter cost (``full_params``: what full fine-tuning trains)."""
    with plt.rc_context({"font.size": 16, "axes.titlesize": 18, "axes.labelsize": 17, "legend.fontsize": 13}):
        fig, ax = plt.subplots(figsize=(10, 6))
        elbow_figure(results, title=title, ax=ax)
        ranks, acc = experiments.by_rank(results)
        i = ranks.index(highlight)
        trainable = next(r["trainable_params"] for r in results if r["config"]["rank"] == highlight)
        ax.plot([highlight], [100 * acc[i].mean()], "o", ms=18, mfc="none", mec="C3", mew=3)
        ax.annotate(f"r = {highlight}: {100 * acc[i].mean():.1f} %\n{trainable:,} trainable parameters "
                    f"({100 * trainable / full_params:.1f} % of full FT)", (highlight, 100 * acc[i].mean()),
                    xytext=(0.04, 0.92), textcoords="axes fraction", va="top",
                    bbox={"boxstyle": "round", "fc": "white", "ec": "C3"})
        fig.tight_layout()
    return fig


def placement_label(config: dict) -> str:
    """A run's placement as the figures and tables name it: ``"parallel"``, or ``"parallel (s = 0.1)"`` when its
    adapters are scaled by something other than 1."""
    scale = config.get("scale", 1.0)
    return config["placement"] + ("" if scale == 1.0 else f" (s = {scale:g})")


def placement_figure(results: Sequence[dict], highlight: dict | None = None, ax: plt.Axes | None = None) -> plt.Figure:
    """A dot plot, one row per (placement, blocks), sorted by test accuracy: the mean over seeds with the range of
    the seeds as a bar, colour = placement. Each row's label gives its trainable parameters and seconds per run, so
    no two labels can overlap, however many runs share a parameter count. ``highlight``: a config dict to circle."""
    rows = pd.DataFrame([{"placement": placement_label(r["config"]), "blocks": str(r["config"]["blocks"]),
                          "acc": 100 * r["test_acc"], "params": r["trainable_params"], "time": r["wall_time_s"]}
                         for r in results])
    stats = (rows.groupby(["placement", "blocks"], sort=False)
             .agg(acc=("acc", "mean"), low=("acc", "min"), high=("acc", "max"), seeds=("acc", "size"),
                  params=("params", "first"), time=("time", "mean"))
             .reset_index().sort_values("acc").reset_index(drop=True))
    if ax is None:
        fig, ax = plt.subplots(figsize=(9, 1.4 + 0.42 * len(stats)))
    colours = {p: f"C{i}" for i, p in enumerate(dict.fromkeys(rows.placement))}
    for y, row in stats.iterrows():
        ax.plot([row.low, row.high], [y, y], color=colours[row.placement], lw=2, alpha=0.5)  # the seeds' range
        ax.scatter(row.acc, y, s=70, color=colours[row.placement], zorder=3)
        if highlight and (row.placement, row.blocks) == (placement_label(highlight), str(highlight["blocks"])):
            ax.scatter(row.acc, y, s=400, facecolors="none", edgecolors="C3", linewidths=2.5, zorder=4)
    ax.set_yticks(range(len(stats)),
                  [f"{r.placement} on {r.blocks} · {r.params / 1e3:.0f}k params · {r.time:.0f} s" for r in stats.itertuples()])
    for label, row in zip(ax.get_yticklabels(), stats.itertuples()):
        label.set_color(colours[row.placement])
    ax.set_xlabel("test accuracy (%)" + ("" if stats.seeds.max() == 1 else ", mean and range over seeds"))
    n_seeds = "1 seed" if stats.seeds.max() == 1 else f"up to {stats.seeds.max()} seeds"
    ax.set_title(f"where the adapters sit ({n_seeds})\nrows: placement on blocks · trainable parameters · seconds per run",
                 loc="right")
    ax.margins(y=0.08)
    ax.figure.tight_layout()
    return ax.figure
