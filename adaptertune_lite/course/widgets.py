"""Widgets: the explorers, thin ipywidgets wrappers around ``experiments`` (runs) and ``plots`` (figures).

Each explorer has a static twin (a figure function in ``plots``) that a notebook draws first, so the
figure is there wherever widgets do not render (a static viewer, nbconvert, CI). Core ipywidgets
only, the API shared by ipywidgets 7.7 (Colab) and 8.
"""

from __future__ import annotations

import contextlib
import html
import os
import time
from dataclasses import replace
from typing import Callable, Sequence, TypeVar

import ipywidgets as w
import matplotlib.pyplot as plt
from IPython.display import clear_output, display

from ..adapters import PLACEMENTS
from . import experiments, plots
from .experiments import RunConfig

T = TypeVar("T")


# ----------------------------------------------------------------------------- widgets
@contextlib.contextmanager
def busy(button: w.Button, status: w.Label, message: str):
    """While a callback runs: its button is disabled and says "Running…", the status line says what runs (a second
    click cannot start a second run, and the room sees that something happens). Both come back afterwards; an error
    is shown in the status line, then raised."""
    label = button.description
    button.disabled, button.description, status.value = True, "Running…", message
    try:
        yield
    except Exception as err:
        status.value = f"failed: {err}"
        raise
    finally:
        button.disabled, button.description = False, label


def shown_in(output: w.Output, work: Callable[[], T]) -> T:
    """``work()`` with what it prints (the progress bars) shown in ``output``, which is cleared once it succeeds. Its
    error is raised here: inside IPython an ``Output`` shows an error raised within it and swallows it, so the
    caller would otherwise go on as if the work had finished."""
    failure = None
    with output:
        clear_output(wait=True)
        try:
            value = work()
            clear_output()
        except Exception as err:  # re-raised below, outside the Output
            failure = err
    if failure is not None:
        raise failure
    return value


def drawn_in(output: w.Output, draw: Callable[[], plt.Figure]) -> plt.Figure:
    """The figure ``draw()`` makes, shown in ``output`` in place of what was there, then closed (so the notebook does
    not show it a second time). Returns it."""
    with output:
        clear_output(wait=True)
        figure = draw()
        display(figure)
    plt.close(figure)
    return figure


def budget_caption(results: Sequence[dict]) -> str:
    """What budget a curve comes from, in one line: epochs, training images, dataset and seeds of ``results``."""
    configs = [r["config"] for r in results]
    epochs, n_train = sorted({c["epochs"] for c in configs}), sorted({str(c.get("n_train") or "all") for c in configs})
    seeds = len({c["seed"] for c in configs})
    return (f"Budget: {'/'.join(map(str, epochs))} epochs on {'/'.join(n_train)} training images of "
            f"{configs[0]['dataset']}, {seeds} seed{'s' * (seeds != 1)} per rank. A curve's shape depends on its budget "
            "(notebook 05 sets short and full training side by side).")


class ElbowExplorer:
    """Pick ranks, training-set size and number of seeds; **Run** trains what is missing (with progress
    bars) and redraws the elbow. ``.figure`` and ``.results`` hold what was drawn last.

    >>> explorer = ElbowExplorer(RunConfig.for_profile("adapter_tune", at.profile()), out_dir)   # doctest: +SKIP
    >>> explorer.widget                                              # doctest: +SKIP
    """

    def __init__(self, base: RunConfig, out_dir: str | os.PathLike, ranks: Sequence[int] = (1, 2, 4, 8, 16, 32, 64),
                 chosen: Sequence[int] = (1, 4, 16), n_trains: Sequence[int] = (250, 500, 1000), max_seeds: int = 3):
        self.base, self.out_dir, self.figure, self.results = base, out_dir, None, []
        self.ranks = w.SelectMultiple(options=list(ranks), value=tuple(chosen), description="ranks", rows=len(ranks))
        wide = {"description_width": "initial"}  # show the whole label
        choices = sorted(set(n_trains) | {base.n_train or 0}, key=lambda n: n or float("inf"))  # the profile's own too
        self.n_train = w.Dropdown(options=[(str(n) if n else "all", n) for n in choices], value=base.n_train or 0,  # 0: all
                                  description="train images", style=wide)
        self.seeds = w.IntSlider(value=1, min=1, max=max_seeds, description="seeds", style=wide)
        self.button = w.Button(description="Run", button_style="primary", tooltip="train what is missing, then redraw")
        self.status = w.Label()
        self.progress, self.output = w.Output(), w.Output()  # progress bars above the figure, in view
        self.button.on_click(self.run)
        controls = w.VBox([self.n_train, self.seeds, self.button, self.status])
        self.widget = w.VBox([w.HBox([self.ranks, controls]), self.progress, self.output])

    def config(self) -> RunConfig:
        return replace(self.base, n_train=self.n_train.value or None)

    def run(self, _button=None) -> None:
        """What the Run button does: sweep the chosen grid (cached runs load instantly), then redraw."""
        ranks, seeds = sorted(self.ranks.value), list(range(self.seeds.value))
        if not ranks:
            self.status.value = "choose at least one rank"
            return
        with busy(self.button, self.status, f"running {len(ranks) * len(seeds)} configurations (cached ones load instantly)..."):
            self.results = shown_in(self.progress, lambda: experiments.run_elbow(self.config(), ranks, seeds, self.out_dir))
            self.figure = drawn_in(self.output, lambda: plots.elbow_figure(
                self.results, title=f"{self.base.dataset}: {self.n_train.label} training images, "
                f"{self.base.recipe.epochs} epoch{'s' * (self.base.recipe.epochs != 1)}"))
        self.status.value = f"done: {len(self.results)} runs"


class LectureDemo:
    """One slider over the ranks of shipped results, and a **Run live** button that trains a fresh seed at
    every rank (progress bars) and adds it to the figure. ``.figure`` / ``.results`` hold what is drawn."""

    def __init__(self, results: Sequence[dict], base: RunConfig, out_dir: str | os.PathLike, full_params: int,
                 title: str = ""):
        self.results, self.base, self.out_dir, self.full_params, self.title = list(results), base, out_dir, full_params, title
        ranks, _ = experiments.by_rank(self.results)
        self.slider = w.SelectionSlider(options=ranks, value=16 if 16 in ranks else ranks[len(ranks) // 2],
                                        description="rank r", continuous_update=False)
        self.button = w.Button(description="Run live", button_style="warning",
                               tooltip="train a fresh seed at every rank and add it to the figure")
        self.status = w.Label()
        self.caption = w.HTML(html.escape(budget_caption(self.results)), layout=w.Layout(width="100%"))  # HTML wraps; a Label is cut off
        self.progress, self.output = w.Output(), w.Output()  # progress bars above the figure, in view
        self.figure = None
        self.slider.observe(lambda change: self.draw(), names="value")
        self.button.on_click(self.run_live)
        self.widget = w.VBox([w.HBox([self.slider, self.button, self.status]), self.progress, self.output, self.caption])
        self.draw()

    def draw(self) -> None:
        self.figure = drawn_in(self.output, lambda: plots.lecture_figure(self.results, self.slider.value, self.full_params, self.title))

    def run_live(self, _button=None) -> None:
        """Train the next unused seed at every rank of the figure (cached if it ran before), then redraw."""
        ranks, _ = experiments.by_rank(self.results)
        seed, start = max(r["config"]["seed"] for r in self.results) + 1, time.perf_counter()
        with busy(self.button, self.status, f"training seed {seed} at {len(ranks)} ranks…"):
            self.results += shown_in(self.progress, lambda: experiments.run_elbow(self.base, ranks, [seed], self.out_dir))
        self.caption.value = html.escape(budget_caption(self.results))
        self.draw()
        self.status.value = f"added seed {seed}: {len(ranks)} runs in {time.perf_counter() - start:.0f} s"


class PlacementExplorer:
    """Choose a placement and which blocks get adapters; **Run** trains it (cached if done before) and adds it to
    the accuracy-vs-parameters figure. ``.figure`` / ``.results`` hold what is drawn."""

    def __init__(self, results: Sequence[dict], base: RunConfig, out_dir: str | os.PathLike,
                 blocks: Sequence[str] = ("all", "every:2", "first:2", "last:2")):
        self.results, self.base, self.out_dir, self.figure = list(results), base, out_dir, None
        self.placement = w.Dropdown(options=list(PLACEMENTS), value=base.placement, description="placement")
        self.blocks = w.Dropdown(options=list(blocks), value="all", description="blocks")
        self.button = w.Button(description="Run", button_style="primary")
        self.status = w.Label()
        self.progress, self.output = w.Output(), w.Output()  # progress bars above the figure, in view
        self.button.on_click(self.run)
        self.widget = w.VBox([w.HBox([self.placement, self.blocks, self.button, self.status]), self.progress, self.output])

    def run(self, _button=None) -> None:
        config = replace(self.base, placement=self.placement.value, blocks=self.blocks.value)
        with busy(self.button, self.status, f"training {config.placement} on {config.blocks} (cached: instant)…"):
            new = shown_in(self.progress, lambda: experiments.sweep([config], self.out_dir))
            self.results += [r for r in new if r["key"] not in {q["key"] for q in self.results}]
            self.figure = drawn_in(self.output, lambda: plots.placement_figure(self.results, highlight=config.to_dict()))
        self.status.value = f"{config.placement} on {config.blocks}: {100 * new[0]['test_acc']:.1f} % (circled)"
