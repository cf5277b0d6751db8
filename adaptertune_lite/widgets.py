"""Widgets: thin ipywidgets wrappers around plain functions that return data or a figure.

Each explorer has a static twin (the plain function) that a notebook draws first, so the figure is
there wherever widgets do not render (a static viewer, nbconvert, CI). Core ipywidgets only, the
API shared by ipywidgets 7.7 (Colab) and 8.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Sequence

import matplotlib.pyplot as plt

from . import experiments, plots
from .experiments import RunConfig


# ----------------------------------------------------------------------------- plain functions
def run_elbow(base: RunConfig, ranks: Sequence[int], seeds: Sequence[int], out_dir: str | os.PathLike,
              progress: bool = True) -> list[dict]:
    """Run (or load from ``out_dir``) AdapterTune at every rank x seed of ``base``; results in grid order."""
    return experiments.sweep(experiments.grid(base, rank=list(ranks), seed=list(seeds)), out_dir, progress=progress)


def elbow_figure(results: Sequence[dict], title: str = "", metric: str = "test_acc", threshold: float = 0.01,
                 references: dict[str, float] | None = None, ax: plt.Axes | None = None) -> plt.Figure:
    """Accuracy against rank from sweep ``results``, with the fitted saturating curve and its elbow
    (:func:`~adaptertune_lite.experiments.fit_elbow`) once there are at least 3 ranks."""
    ranks, acc = experiments.by_rank(results, metric)
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4.2))
    fig = ax.figure
    fit = experiments.fit_elbow(ranks, acc, threshold) if len(ranks) >= 3 else None
    plots.plot_elbow(ranks, acc, ax=ax, fit=fit, references=references)
    ax.set_ylabel(f"{'validation' if metric == 'val_acc' else 'test'} accuracy (%)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- widgets
class ElbowExplorer:
    """Pick ranks, training-set size and number of seeds; **Run** trains what is missing (with progress
    bars) and redraws the elbow. ``.figure`` and ``.results`` hold what was drawn last.

    >>> explorer = ElbowExplorer(RunConfig.from_recipe(), out_dir)   # doctest: +SKIP
    >>> explorer.widget                                              # doctest: +SKIP
    """

    def __init__(self, base: RunConfig, out_dir: str | os.PathLike, ranks: Sequence[int] = (1, 2, 4, 8, 16, 32, 64),
                 chosen: Sequence[int] = (1, 4, 16), n_trains: Sequence[int] = (250, 500, 1000), max_seeds: int = 3):
        import ipywidgets as w

        self.base, self.out_dir, self.figure, self.results = base, out_dir, None, []
        self.ranks = w.SelectMultiple(options=list(ranks), value=tuple(chosen), description="ranks", rows=len(ranks))
        wide = {"description_width": "initial"}  # show the whole label
        self.n_train = w.Dropdown(options=list(n_trains), value=base.n_train if base.n_train in n_trains else n_trains[-1],
                                  description="train images", style=wide)
        self.seeds = w.IntSlider(value=1, min=1, max=max_seeds, description="seeds", style=wide)
        self.button = w.Button(description="Run", button_style="primary", tooltip="train what is missing, then redraw")
        self.status = w.Label()
        self.output = w.Output()
        self.button.on_click(self.run)
        controls = w.VBox([self.n_train, self.seeds, self.button, self.status])
        self.widget = w.VBox([w.HBox([self.ranks, controls]), self.output])

    def config(self) -> RunConfig:
        return replace(self.base, n_train=self.n_train.value)

    def run(self, _button=None) -> None:
        """What the Run button does: sweep the chosen grid (cached runs load instantly), then redraw."""
        from IPython.display import clear_output, display

        ranks, seeds = sorted(self.ranks.value), list(range(self.seeds.value))
        if not ranks:
            self.status.value = "choose at least one rank"
            return
        self.status.value = f"running {len(ranks) * len(seeds)} configurations (cached ones load instantly)..."
        with self.output:
            clear_output(wait=True)
            self.results = run_elbow(self.config(), ranks, seeds, self.out_dir)
            self.figure = elbow_figure(self.results, title=f"{self.base.dataset}: {self.n_train.value} training images")
            clear_output(wait=True)
            display(self.figure)
        plt.close(self.figure)
        self.status.value = f"done: {len(self.results)} runs"


# ----------------------------------------------------------------------------- the lecture demo
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


class LectureDemo:
    """One slider over the ranks of shipped results, and a **Run live** button that trains a fresh seed at
    every rank (progress bars) and adds it to the figure. ``.figure`` / ``.results`` hold what is drawn."""

    def __init__(self, results: Sequence[dict], base: RunConfig, out_dir: str | os.PathLike, full_params: int,
                 title: str = ""):
        import ipywidgets as w

        self.results, self.base, self.out_dir, self.full_params, self.title = list(results), base, out_dir, full_params, title
        ranks, _ = experiments.by_rank(self.results)
        self.slider = w.SelectionSlider(options=ranks, value=16 if 16 in ranks else ranks[len(ranks) // 2],
                                        description="rank r", continuous_update=False)
        self.button = w.Button(description="Run live: add a seed", button_style="warning")
        self.output = w.Output()
        self.figure = None
        self.slider.observe(lambda change: self.draw(), names="value")
        self.button.on_click(self.run_live)
        self.widget = w.VBox([w.HBox([self.slider, self.button]), self.output])
        self.draw()

    def draw(self) -> None:
        from IPython.display import clear_output, display

        with self.output:
            clear_output(wait=True)
            self.figure = lecture_figure(self.results, self.slider.value, self.full_params, self.title)
            display(self.figure)
        plt.close(self.figure)

    def run_live(self, _button=None) -> None:
        """Train the next unused seed at every rank of the figure (cached if it ran before), then redraw."""
        ranks, _ = experiments.by_rank(self.results)
        seed = max(r["config"]["seed"] for r in self.results) + 1
        with self.output:
            self.results += run_elbow(self.base, ranks, [seed], self.out_dir)
        self.draw()


# ----------------------------------------------------------------------------- placement
def placement_figure(results: Sequence[dict], highlight: dict | None = None, ax: plt.Axes | None = None) -> plt.Figure:
    """Test accuracy against trainable parameters (log x) for runs of different placements and block choices;
    colour = placement, label = blocks, mean over seeds. ``highlight``: a config dict to circle."""
    import pandas as pd

    rows = pd.DataFrame([{"placement": r["config"]["placement"], "blocks": str(r["config"]["blocks"]),
                          "acc": 100 * r["test_acc"], "params": r["trainable_params"], "time": r["wall_time_s"]}
                         for r in results])
    mean = rows.groupby(["placement", "blocks"], sort=False).mean().reset_index()
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 4.8))
    colours = {p: f"C{i}" for i, p in enumerate(dict.fromkeys(mean.placement))}
    for i, row in mean.iterrows():
        ax.scatter(row.params, row.acc, s=80, color=colours[row.placement])
        ax.annotate(f"{row.blocks} ({row.time:.0f} s)", (row.params, row.acc), textcoords="offset points",
                    xytext=(8, 4 if i % 2 == 0 else -12), fontsize=9, color=colours[row.placement])  # alternate: fewer overlaps
        if highlight and (row.placement, row.blocks) == (highlight["placement"], str(highlight["blocks"])):
            ax.scatter(row.params, row.acc, s=400, facecolors="none", edgecolors="C3", linewidths=2.5)
    for p, c in colours.items():
        ax.scatter([], [], color=c, label=p)
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.margins(x=0.12)
    ax.set_title("placement: accuracy vs trainable parameters\n(labels: blocks with adapters, seconds per run)")
    ax.legend(title="placement", fontsize="small", loc="lower right")
    ax.figure.tight_layout()
    return ax.figure


class PlacementExplorer:
    """Choose a placement and which blocks get adapters; **Run** trains it (cached if done before) and adds it to
    the accuracy-vs-parameters figure. ``.figure`` / ``.results`` hold what is drawn."""

    def __init__(self, results: Sequence[dict], base: RunConfig, out_dir: str | os.PathLike,
                 blocks: Sequence[str] = ("all", "every:2", "first:2", "last:2")):
        import ipywidgets as w

        from .adapters import PLACEMENTS

        self.results, self.base, self.out_dir, self.figure = list(results), base, out_dir, None
        self.placement = w.Dropdown(options=list(PLACEMENTS), value=base.placement, description="placement")
        self.blocks = w.Dropdown(options=list(blocks), value="all", description="blocks")
        self.button = w.Button(description="Run", button_style="primary")
        self.output = w.Output()
        self.button.on_click(self.run)
        self.widget = w.VBox([w.HBox([self.placement, self.blocks, self.button]), self.output])

    def run(self, _button=None) -> None:
        from IPython.display import clear_output, display

        config = replace(self.base, placement=self.placement.value, blocks=self.blocks.value)
        with self.output:
            clear_output(wait=True)
            new = experiments.sweep([config], self.out_dir)
            self.results += [r for r in new if r["key"] not in {q["key"] for q in self.results}]
            self.figure = placement_figure(self.results, highlight=config.to_dict())
            clear_output(wait=True)
            display(self.figure)
        plt.close(self.figure)
