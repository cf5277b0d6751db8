# %% [markdown]
# # 05 · Rank as a capacity budget: the elbow
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/adaptertune-lite/adaptertune_lite/blob/main/notebooks/05_rank_elbow.ipynb)
#
# In this notebook you will
#
# 1. see what the rank `r` of an adapter buys: parameters, and capacity to change the features;
# 2. run a rank sweep on the course's default target and fit a saturating curve to it;
# 3. summarise the **elbow**, the rank beyond which doubling `r` hardly helps, robustly and with an interval;
# 4. tell a short-training elbow from the full recipe's, and see what the amount of data does at a fixed step count;
# 5. explore ranks, data and seeds yourself with a widget that runs real experiments.

# %%
# Colab or a bare Python: install the kit. Written by tools/sync_notebooks.py from pyproject.toml: edit it there.
import importlib.metadata
import importlib.util
import os
import subprocess
import sys

KIT = "adaptertune-lite"  # the published package
SOURCE = "git+https://github.com/adaptertune-lite/adaptertune_lite"  # its repository: the fallback
if importlib.util.find_spec("adaptertune_lite") is None:
    target = os.environ.get("ADAPTERTUNE_INSTALL", KIT)  # e.g. a local wheel
    keep = [f"{p}=={importlib.metadata.version(p)}" for p in ("torch", "torchvision") if importlib.util.find_spec(p)]
    print(f"installing {target}, keeping the preinstalled {', '.join(keep) or 'nothing'} ...")
    if subprocess.run([sys.executable, "-m", "pip", "install", "-q", target, *keep]).returncode != 0:
        print(f"{target} did not install: installing from the repository, {SOURCE}")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", SOURCE, *keep], check=True)
    importlib.invalidate_caches()
kit = importlib.util.find_spec("adaptertune_lite")
print("adaptertune_lite", importlib.metadata.version("adaptertune_lite"), "from", kit.origin)

# %% [markdown]
# Versions and device first, so every number below can be traced to what produced it.

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

import adaptertune_lite as at

for package, version in at.versions().items():
    print(f"{package:<18} {version}")
print("device:", at.describe_device(), "| FAST mode:", at.fast_mode())
P = at.profile()  # kit or paper: what every run below trains on ($ADAPTERTUNE_PROFILE chooses)
print(P)
at.course.plots.use_style()

# %% [markdown]
# ## What rank buys
#
# An adapter `A(h) = W_up · GELU(W_down · h + b_down) + b_up` squeezes the width-`d` residual stream
# through `r` hidden units. Its parameters grow linearly in `r`: `2·d·r + r + d` per adapter.
# Two forces set how accuracy grows with `r` (the paper's excess-risk view):
#
# * **approximation error** falls as `r` grows: more directions in which the features can be changed;
# * **estimation error** grows with the number of trained parameters relative to the training images.
#
# On a fixed training set the first dominates at small `r` and fades, so accuracy rises with
# diminishing returns: an elbow. Why a small `r` can go a long way: fine-tuning updates of large
# pretrained models have a low *intrinsic dimension* (Aghajanyan et al., ACL 2021, measured on language
# models; a finding from that paper, not measured here).
#
# The parameter bill for the profile's backbone, one adapter per block:

# %%
backbone = at.load_backbone(P.backbone, num_classes=10, pretrained=False)  # the architecture only: no download
d, depth = backbone.embed_dim, len(backbone.blocks)
print(f"{P.backbone}: width d = {d}, {depth} blocks")
full = at.count_parameters(backbone).total  # what full fine-tuning trains
bill = pd.DataFrame([{"rank r": r, "adapter parameters": depth * at.num_adapter_params(d, r),
                      "% of full fine-tuning": 100 * depth * at.num_adapter_params(d, r) / full}
                     for r in (1, 2, 4, 8, 16, 32, 64)])
display(bill.style.format({"adapter parameters": "{:,}", "% of full fine-tuning": "{:.2f}"}).hide(axis="index"))

# %% [markdown]
# ### The scale convention
#
# AdapterTune adds `s · A(h)` with a **fixed** scale `s` (1 here), whatever the rank. LoRA adds
# `(α / r) · B A x`: with `α` fixed, raising `r` also *shrinks* the scale of each direction. Which of the two
# keeps the step steady depends on the optimiser. Under Adam every entry of `W_up` moves by about `lr` per step
# whatever its gradient (notebook 02 measures it), so the first step changes `A(h)` by an amount that grows like
# `s · r`: `α/r` keeps it steady, and AdapterTune's fixed scale lets it grow in proportion to `r`, so the AdapterTune
# sweep below changes two things at once, capacity and step size. (Under SGD it grows like `s² · r`: there `α/√r`
# is the steady one.) Notebook 08 §4 measures both laws. When comparing rank sweeps across papers, check the
# scale convention and the optimiser.

# %% [markdown]
# ## The sweep
#
# The sweep trains on the profile's setting. In the `kit` profile that is `left_digit`, the course's default
# target: two digits side by side, name the left one; a frozen linear probe does poorly on it, so adapters
# have something to learn (see the kit benchmark report). In the `paper` profile it is a pretrained timm ViT
# on a torchvision dataset. Every run is one `RunConfig`; `at.sweep` runs the ones whose results are not on disk yet and
# reuses the rest, so running this cell twice is instant. FAST mode sweeps every other rank of the grid (1, 4, 16, 64)
# with one seed, to keep the laptop course within minutes; the full run sweeps all seven with three.

# %%
BASE = at.RunConfig.for_profile("adapter_tune", P)  # the profile's recipe: lr, epochs, training images
FULL_RANKS = [1, 2, 4, 8, 16, 32, 64]  # the full grid: every rank the kit benchmark ran at the full recipe
RANKS = at.by_mode([1, 4, 16, 64], FULL_RANKS)  # ranks to sweep: every other one in FAST mode (about 5 s per run on a 2-core CPU)
SEEDS = at.by_mode([0], [0, 1, 2])  # one seed in FAST mode; three for error bars
OUT = at.course.experiments.runs_root()  # the course's one results cache (a JSON per run): a run any notebook trained loads instantly
print(BASE)

results = at.course.experiments.run_elbow(BASE, RANKS, SEEDS, OUT)

# %% [markdown]
# The fitted curve `acc(r) = a − b · r^(−c)` shows the shape; its ceiling `a` is an extrapolation beyond
# the grid. **Summary of the elbow:** the smallest swept rank whose mean accuracy reaches 90 % of the gain
# from the smallest to the largest rank (`at.robust_elbow`). It uses the whole curve's gain rather than one
# comparison with the last grid point, whose own noise would decide, and it says what can undo it: it names no elbow
# when the gain is within its noise (two standard errors over seeds and the test images), it gives each seed's own
# elbow (three seeds are too few for a 95 % interval), and the elbow with the largest rank left out.

# %%
fig = at.course.plots.elbow_figure(results, title=f"{BASE.dataset}: {BASE.n_train or 'all'} training images, {BASE.recipe.epochs} epochs")
plt.show()

ranks, acc = at.course.experiments.by_rank(results)
fit = at.fit_elbow(ranks, acc)
table = pd.DataFrame({"rank r": ranks, "test accuracy %": 100 * acc.mean(1), "fitted %": 100 * fit(ranks)})
display(table.style.format({"test accuracy %": "{:.1f}", "fitted %": "{:.1f}"}).hide(axis="index"))
N_TEST = len(at.load_dataset(BASE.dataset).test)  # test images: their binomial noise is part of the elbow's noise
elbow = at.robust_elbow(ranks, acc, n_test=N_TEST)


def ceiling(f) -> str:
    """What the fit says about the ceiling, honestly: nothing when the fit ran into its bound."""
    return ("the fit ran into its bound of 100 %: no ceiling can be read from this curve" if f.a > 0.995 else
            f"the fitted ceiling, an extrapolation beyond r = {f.max_rank}, is {100 * f.a:.1f} %")


display(Markdown(f"**{elbow.sentence()}** Curve: {100 * acc.mean(1)[0]:.1f} % at r = {ranks[0]} to "
                 f"{100 * acc.mean(1)[-1]:.1f} % at r = {ranks[-1]}; {ceiling(fit)}."))

# %% [markdown]
# ## Short training or the full recipe?
#
# In FAST mode every run is short (a few dozen steps), and a short run favours the adapters that move
# fastest, which (above) are the larger ones. So part of a FAST elbow is a short-training effect. The kit
# benchmark ran the same sweep at the course's full recipe (15 epochs on the whole train split, 3 seeds);
# in the `kit` profile its shipped results sit beside this notebook's curve.

# %%
# the kit benchmark's runs at the full recipe, shipped in the package (course/results/kit_full_recipe), found by key
full_runs = at.course.experiments.full_recipe_elbow(FULL_RANKS) if P.name == "kit" else []
if full_runs:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for res, label in ((results, f"this notebook: {BASE.recipe.epochs} epochs, {BASE.n_train or 'all'} images"),
                       (full_runs, "full recipe (shipped): 15 epochs, all images")):
        r, a = at.course.experiments.by_rank(res)
        ax.errorbar(r, 100 * a.mean(1), yerr=100 * a.std(1), marker="o", capsize=3, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(FULL_RANKS, [str(r) for r in FULL_RANKS])
    ax.set_xlabel("adapter rank r (bottleneck width)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{BASE.dataset}: short training against the full recipe")
    ax.legend()
    plt.show()
    full_ranks, full_acc = at.course.experiments.by_rank(full_runs)
    display(Markdown(f"* this notebook: {elbow.sentence()}\n* full recipe: {at.robust_elbow(full_ranks, full_acc, n_test=N_TEST).sentence()}"))
else:
    print("No full-recipe sweep ships for this profile (it ships for the kit profile): set ADAPTERTUNE_PROFILE=kit to see it.")

# %% [markdown]
# ## The elbow and the amount of data
#
# The estimation side of the trade-off depends on how many images there are to learn from. We run the
# same sweep on a quarter of the training images, **for four times the epochs**, so that both sweeps take
# the same number of optimiser steps and only the data changes (a quarter of the images at the same epochs
# would also be a quarter of the training).
#
# **Expected before running:** with less data, estimation error weighs more, so extra rank should buy less:
# the curve is lower and the elbow at the same or a smaller rank.

# %%
n_images = BASE.n_train or len(at.load_dataset(BASE.dataset).train)  # the whole train split when n_train is None
SMALL = BASE.replace(n_train=n_images // 4, epochs=4 * BASE.recipe.epochs)  # a quarter of the images, the same steps
small_results = at.course.experiments.run_elbow(SMALL, RANKS, SEEDS, OUT)

fig, ax = plt.subplots(figsize=(7, 4.2))
for res, n in ((results, BASE.n_train), (small_results, SMALL.n_train)):
    r, a = at.course.experiments.by_rank(res)
    ax.errorbar(r, 100 * a.mean(1), yerr=100 * a.std(1), marker="o", capsize=3, label=f"{n or n_images} training images")
ax.set_xscale("log", base=2)
ax.set_xticks(RANKS, [str(r) for r in RANKS])
ax.set_xlabel("adapter rank r (bottleneck width)")
ax.set_ylabel("test accuracy (%)")
ax.set_title("the same sweep on less data")
ax.legend()
plt.show()

small_ranks, small_acc = at.course.experiments.by_rank(small_results)
small_elbow = at.robust_elbow(small_ranks, small_acc, n_test=N_TEST)
as_expected = small_elbow.rank <= elbow.rank
flat = not (elbow.rises and small_elbow.rises)  # a curve within its noise has no elbow to compare
neither = elbow.rank == elbow.max_rank and small_elbow.rank == small_elbow.max_rank  # no bend within the grid in either
display(Markdown(
    f"* {BASE.n_train or n_images} images: {elbow.sentence()}\n* {SMALL.n_train} images: {small_elbow.sentence()}\n\n"
    + ("At least one of the two curves does not rise beyond its noise, so there is no pair of elbows to compare."
       if flat else
       f"Neither curve bends within the grid at this budget (both reach 90 % of their gain only at r = {elbow.max_rank}), so "
       "these runs cannot place the smaller set's elbow against the larger set's; the full run (every rank, three seeds) can."
       if neither else
       f"As expected, the smaller set's elbow is at the same or a smaller rank (r = {small_elbow.rank} against r = {elbow.rank})."
       if as_expected else
       f"Not as expected: the smaller set's elbow is at a larger rank (r = {small_elbow.rank} against r = {elbow.rank}). "
       "With one seed, or intervals that overlap, this is within noise; with several seeds and separate intervals, "
       "something other than estimation error (optimisation, the step-size coupling above) moves it.")
    + (" The seeds' own elbows overlap: the seeds cannot tell the two elbows apart." if not flat and elbow.n_seeds > 1 and
       not (small_elbow.high < elbow.low or elbow.high < small_elbow.low) else "")))

# %% [markdown]
# ## Explore it yourself
#
# Pick ranks (Ctrl/Cmd-click for several), a training-set size and how many seeds, then press
# **Run**. Runs already on disk load instantly; new ones train with a progress bar. (Where widgets do
# not render, the figures above are the static version of the same plot.)

# %%
explorer = at.course.widgets.ElbowExplorer(BASE, OUT, ranks=FULL_RANKS, chosen=RANKS)  # every rank to pick from; starts from the sweep above
explorer.widget

# %% [markdown]
# ## What to take away
#
# * Rank is a budget: parameters grow linearly in `r`, accuracy with diminishing returns.
# * A stated rule with its noise (here: the first rank with 90 % of the gain, none when the gain is within its
#   noise) turns "the elbow" into a number you can compare across datasets, training-set sizes and placements; one
#   grid point cannot. Read it with the seeds' own elbows and the elbow without the largest rank beside it.
# * A short-training elbow is partly a statement about step size: compare it with the full recipe before
#   reading it as capacity.
# * Rank sweeps from different methods are comparable only under the same scale convention.
