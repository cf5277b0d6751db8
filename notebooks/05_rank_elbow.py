# %% [markdown]
# # 05 · Rank as a capacity budget: the elbow
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/adaptertune-lite/adaptertune_lite/blob/main/notebooks/05_rank_elbow.ipynb)
#
# In this notebook you will
#
# 1. see what the rank `r` of an adapter buys: parameters, and capacity to change the features;
# 2. run a rank sweep on the course's default target and fit a saturating curve to it;
# 3. find the **elbow**, the rank beyond which doubling `r` hardly helps, by a stated rule;
# 4. watch the elbow move when the training set changes size;
# 5. explore ranks, data and seeds yourself with a widget that runs real experiments.

# %%
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("adaptertune_lite") is None:  # Colab or a bare Python: install the kit
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "git+https://github.com/adaptertune-lite/adaptertune_lite"], check=True)

# %% [markdown]
# Versions and device first, so every number below can be traced to what produced it.

# %%
from dataclasses import replace

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

import adaptertune_lite as at

for package, version in at.versions().items():
    print(f"{package:<18} {version}")
print("device:", at.describe_device(), "| FAST mode:", at.fast_mode())
P = at.profile()  # kit or paper: what every run below trains on ($ADAPTERTUNE_PROFILE chooses)
print(P)
at.plots.use_style()

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
# `(α / r) · B A x`: with `α` fixed, raising `r` also *shrinks* the scale of each direction. A LoRA rank
# sweep therefore changes two things at once (capacity and step size); the AdapterTune sweep below
# changes only capacity. When comparing rank sweeps across papers, check which convention was used.

# %% [markdown]
# ## The sweep
#
# The sweep trains on the profile's setting. In the `kit` profile that is `left_digit`, the course's default
# target: two digits side by side, name the left one; a frozen linear probe does poorly on it, so adapters
# have something to learn (see the kit benchmark report). In the `paper` profile it is a pretrained timm ViT
# on a torchvision dataset. Every run is one `RunConfig`; `at.sweep` runs the ones whose results are not on disk yet and
# reuses the rest, so running this cell twice is instant.

# %%
BASE = at.RunConfig.for_profile("adapter_tune", P)  # the profile's recipe: lr, epochs, training images
RANKS = [1, 2, 4, 8, 16, 32, 64]  # ranks to sweep (about 7 s per run in FAST mode on a laptop CPU)
SEEDS = at.by_mode([0], [0, 1, 2])  # one seed in FAST mode; three for error bars
OUT = at.experiments.runs_root() / "05_rank_elbow"  # results cache (one JSON per run; the key holds backbone and data)
print(BASE)

results = at.experiments.run_elbow(BASE, RANKS, SEEDS, OUT)

# %% [markdown]
# The fitted curve is `acc(r) = a − b · r^(−c)`: it saturates at `a`, the accuracy a much larger
# adapter would reach on this data. **Rule for the elbow:** the smallest swept rank `r` from which
# going all the way to the largest swept rank gains less than 1 point of (mean) accuracy: every rank
# beyond the elbow buys less than a point.

# %%
fig = at.plots.elbow_figure(results, title=f"{BASE.dataset}: {BASE.n_train or 'all'} training images, {BASE.recipe.epochs} epochs")
plt.show()

ranks, acc = at.experiments.by_rank(results)
fit = at.fit_elbow(ranks, acc)
table = pd.DataFrame({"rank r": ranks, "test accuracy %": 100 * acc.mean(1), "fitted %": 100 * fit(ranks)})
display(table.style.format({"test accuracy %": "{:.1f}", "fitted %": "{:.1f}"}).hide(axis="index"))
if fit.elbow < fit.max_rank:
    display(Markdown(f"**Elbow at r = {fit.elbow}**: going from there to r = {fit.max_rank} gains less than "
                     f"{100 * fit.threshold:g} point. The fitted curve saturates at {100 * fit.a:.1f} %."))
else:
    display(Markdown(f"**No elbow up to r = {fit.max_rank}**: the largest rank still adds at least "
                     f"{100 * fit.threshold:g} point over the next one down. The fitted curve saturates at {100 * fit.a:.1f} %."))

# %% [markdown]
# ## The elbow moves with the data
#
# The estimation side of the trade-off depends on how many images there are to learn from. Run the
# same sweep on a quarter of the training images and compare the fitted elbows.

# %%
n_images = BASE.n_train or len(at.load_dataset(BASE.dataset).train)  # the whole train split when n_train is None
SMALL = replace(BASE, n_train=n_images // 4)  # a quarter of the images
small_results = at.experiments.run_elbow(SMALL, RANKS, SEEDS, OUT)

fig, ax = plt.subplots(figsize=(7, 4.2))
for res, n in ((results, BASE.n_train), (small_results, SMALL.n_train)):
    r, a = at.experiments.by_rank(res)
    ax.errorbar(r, 100 * a.mean(1), yerr=100 * a.std(1), marker="o", capsize=3, label=f"{n or n_images} training images")
ax.set_xscale("log", base=2)
ax.set_xticks(RANKS, [str(r) for r in RANKS])
ax.set_xlabel("adapter rank r (bottleneck width)")
ax.set_ylabel("test accuracy (%)")
ax.set_title("the same sweep on less data")
ax.legend()
plt.show()

small_fit = at.fit_elbow(*at.experiments.by_rank(small_results))
display(Markdown(f"Fitted elbow: **r = {fit.elbow}** with {BASE.n_train or n_images} images, **r = {small_fit.elbow}** with "
                 f"{SMALL.n_train}; fitted ceiling {100 * fit.a:.1f} % vs {100 * small_fit.a:.1f} %."))

# %% [markdown]
# ## Explore it yourself
#
# Pick ranks (Ctrl/Cmd-click for several), a training-set size and how many seeds, then press
# **Run**. Runs already on disk load instantly; new ones train with a progress bar. (Where widgets do
# not render, the figures above are the static version of the same plot.)

# %%
explorer = at.widgets.ElbowExplorer(BASE, OUT, ranks=RANKS, chosen=RANKS)  # starts from the sweep above
explorer.widget

# %% [markdown]
# ## What to take away
#
# * Rank is a budget: parameters grow linearly in `r`, accuracy with diminishing returns.
# * A stated rule (here: the largest rank adds < 1 point) turns "the elbow"
#   into a number you can compare across datasets, training-set sizes and placements.
# * Rank sweeps from different methods are comparable only under the same scale convention.
