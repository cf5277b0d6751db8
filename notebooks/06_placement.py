# %% [markdown]
# # 06 · Where should the adapters go?
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/adaptertune-lite/adaptertune_lite/blob/main/notebooks/06_placement.ipynb)
#
# In this notebook you will
#
# 1. meet five placements of an adapter inside a transformer block, and four choices of blocks;
# 2. measure each on the course's default target: accuracy, trainable parameters, wall time;
# 3. see why adapters in the **last** blocks only train much faster: the frozen blocks before them
#    can be run once and cached;
# 4. explore placements yourself with a widget that runs real experiments.

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
from adaptertune_lite.stats import paired_difference

for package, version in at.versions().items():
    print(f"{package:<18} {version}")
print("device:", at.describe_device(), "| FAST mode:", at.fast_mode())
P = at.profile()  # kit or paper: what every run below trains on ($ADAPTERTUNE_PROFILE chooses)
print(P)
at.course.plots.use_style()

# %% [markdown]
# ## Five placements
#
# A block computes `x = x + Attn(LN(x)); x = x + MLP(LN(x))`. An adapter `A` can sit:
#
# | placement | where | from |
# | --- | --- | --- |
# | `post_block` | on the residual stream after the block: `x ← x + A(x)` | AdapterTune (the paper); Adapter+'s "Post" position (Steitz & Roth 2024) |
# | `post_attn` | on the attention output, before its residual add | Houlsby et al. 2019 (half) |
# | `post_mlp` | on the MLP output, before its residual add | Pfeiffer et al. 2021 (half of Houlsby's) |
# | `houlsby` | both of the above: two adapters per block | Houlsby et al. 2019 |
# | `parallel` | beside the MLP, fed the MLP's input: `MLP(h) + s·A(h)` | AdaptFormer's position (Chen et al. 2022) |
#
# Only `parallel` at AdaptFormer's own scale is close to AdaptFormer's adapter: it multiplies the branch by `s = 0.1`
# (notebook 02). Close, not the same: AdaptFormer's bottleneck uses ReLU where the kit's uses GELU, and it trained at
# its own learning rate, where ours is the kit's. At `s = 1` and `post_block`'s learning rate, `parallel` tests the *position* alone, and a
# tenth of the scale is also a tenth of the step each update makes to the features (notebook 05), so the sweep
# runs both: `parallel` (s = 1) and `parallel (s = 0.1)`, at the same learning rate (AdaptFormer tuned its own;
# we did not, which is worth remembering when reading its row: in a short FAST run, part of what `s = 0.1` measures is
# a ten times smaller step).
#
# And in **which blocks**: all, every second one, the first two, or the last two. `print` shows where
# each adapter went; the backbone's own parameter names never change.

# %%
model = at.add_adapters(at.load_backbone(P.backbone, num_classes=10, pretrained=False), rank=4, placement="houlsby",
                        blocks=at.last_k(2))  # the architecture only (no download)
print(model.blocks[-1])  # the last block: one adapter on attn, one on mlp
print(list(at.adapters_of(model)))  # names of every adapter

# %% [markdown]
# ## The sweep
#
# Same recipe and rank for every run (the profile's AdapterTune recipe, r = 16); only where
# the adapters sit changes. In FAST mode, to stay within a laptop's minutes: `post_block`, `houlsby` (two adapters
# a block) and `parallel` at both scales on all blocks with three seeds, and `post_block` on the last two blocks (the
# cheap choice timed below) with one; `post_attn` and `post_mlp` (the halves of Houlsby's pair) and the other block
# choices run in the full sweep, every combination with three seeds.

# %%
BASE = at.RunConfig.for_profile("adapter_tune", P)  # lr, epochs, training images
PLACEMENTS = list(at.PLACEMENTS)
BLOCKS = ["all", at.every_k(2), at.first_k(2), at.last_k(2)]  # which blocks get adapters
OUT = at.course.experiments.runs_root()  # the course's one results cache (a JSON per run): a run any notebook trained loads instantly
SEEDS = [0, 1, 2]  # three seeds: the fewest a paired interval can call a difference with
ADAPTFORMER = at.grid(BASE.replace(placement="parallel", scale=0.1), seed=SEEDS)  # AdaptFormer's scale s = 0.1
if at.fast_mode():
    FAST_PLACEMENTS = ["post_block", "houlsby", "parallel"]  # post_attn and post_mlp run in the full sweep
    configs = at.grid(BASE, placement=FAST_PLACEMENTS, seed=SEEDS) + ADAPTFORMER + at.grid(BASE, blocks=[at.last_k(2)])
else:
    configs = at.grid(BASE, placement=PLACEMENTS, blocks=BLOCKS, seed=SEEDS) + ADAPTFORMER
results = at.sweep(configs, OUT)

# %%
rows = pd.DataFrame([{"placement": at.course.plots.placement_label(r["config"]), "blocks": str(r["config"]["blocks"]), "seed": r["config"]["seed"],
                      "test accuracy %": 100 * r["test_acc"], "trainable parameters": r["trainable_params"],
                      "seconds per run": r["wall_time_s"]} for r in results])
table = (rows.groupby(["placement", "blocks"], sort=False).mean().drop(columns="seed").reset_index()
         .sort_values("test accuracy %", ascending=False))
display(table.style.format({"test accuracy %": "{:.1f}", "trainable parameters": "{:,.0f}", "seconds per run": "{:.1f}"})
        .hide(axis="index"))
fig = at.course.plots.placement_figure(results)
plt.show()

# %% [markdown]
# Is any choice better than the paper's `post_block` on all blocks? Every choice is compared with it over the
# seeds both ran (paired by seed, 95 % Student-t interval, `at.stats.paired_difference`); a difference needs at
# least three seeds and an interval that excludes zero. The table's order alone is not a ranking.

# %%
by_seed = rows.pivot_table(index="seed", columns=["placement", "blocks"], values="test accuracy %")
reference = by_seed["post_block", "all"]
lines, detected = [], []
for (placement, blocks), accs in by_seed.items():
    if (placement, blocks) == ("post_block", "all"):
        continue
    both = accs.notna() & reference.notna()  # the seeds both ran
    d = paired_difference(accs[both].to_numpy() / 100, reference[both].to_numpy() / 100)
    lines.append(f"* {d.sentence(f'{placement} on {blocks}', 'post_block on all')}")
    detected += [(placement, blocks, d.mean)] if d.detected else []
summary_line = ("No choice differs detectably from `post_block` on all blocks at this budget "
                f"({len(by_seed)} seed{'s' * (len(by_seed) != 1)}): the order of the table is within noise."
                if not detected else
                "Detected: " + "; ".join(f"{p} on {b} {'above' if m > 0 else 'below'} `post_block` on all" for p, b, m in detected) + ".")
display(Markdown(f"**{summary_line}**\n\n" + "\n".join(lines)))

# %% [markdown]
# ## Adapters only in the last blocks: cache the frozen prefix
#
# With adapters in the last two blocks only, the blocks before them never change during training: their
# output for each image is the same every epoch. Nor does the first adapted block's own output, because its
# adapter sits *after* it (post-block). `fit(..., speedups=Speedups(cache_frozen_prefix=True))` runs all of that once and trains on the cached tokens:
# each step runs only the first adapter, the last block, its adapter and the head. Without dropout (the kit
# backbone has none) the result is the same up to float rounding; only the time changes. Augmentation changes
# the images every epoch, so nothing can be cached under it: this comparison trains without it.

# %%
timing = {}
for cache in (False, True):
    at.seed_everything(0)  # the same adapters and head for both runs
    model = at.add_adapters(at.load_backbone(BASE.backbone), rank=16, blocks=at.last_k(2))
    data = at.load_dataset(BASE.dataset, model, n_train=BASE.n_train)
    model.reset_classifier(data.num_classes)
    res = at.fit(model, data.train, data.val, method="adapter_tune", recipe=BASE.recipe.replace(augment=None),
                 speedups=at.Speedups(cache_frozen_prefix=cache))  # speed only: the same result either way
    timing["cached prefix" if cache else "whole backbone every step"] = {
        "seconds": res.wall_time_s, "validation accuracy %": 100 * res.val_acc, "final loss": res.history["loss"][-1]}
timing = pd.DataFrame(timing).T
display(timing.style.format({"seconds": "{:.2f}", "validation accuracy %": "{:.1f}", "final loss": "{:.4f}"}))
speedup = timing.seconds.iloc[0] / timing.seconds.iloc[1]
val_a, val_b = timing["validation accuracy %"]
same = ("the same validation accuracy (" + f"{val_a:.1f} % both ways)" if val_a == val_b else
        f"validation accuracy {val_a:.1f} % against {val_b:.1f} % (float rounding in the cached path)")
display(Markdown(f"**{speedup:.1f}× faster** with {same}, in {BASE.recipe.epochs} epochs including "
                 "the one-off pass that fills the cache (one run each: a timing, not an accuracy comparison)."))

# %% [markdown]
# ## Explore it yourself
#
# Pick a placement and the blocks, press **Run**; the run is added to the figure and circled (runs already
# on disk load instantly). Where widgets do not render, the figure above is the static version.

# %%
explorer = at.course.widgets.PlacementExplorer(results, BASE, OUT)
explorer.widget

# %% [markdown]
# ## What the literature found (papers; not measured here)
#
# | work | placement | what it reports (paper) |
# | --- | --- | --- |
# | Houlsby et al. 2019 (ICML) | two adapters per layer, after attention and after the MLP (`houlsby`) | on GLUE, within 0.4 % of full fine-tuning while adding 3.6 % parameters per task (abstract) |
# | Pfeiffer et al. 2021 (AdapterFusion, EACL) | one adapter after the MLP (`post_mlp`) | chosen by an architecture search: one adapter per layer does as well as two at lower cost |
# | Chen et al. 2022 (AdaptFormer, NeurIPS) | parallel to the MLP, scaled by s = 0.1 (`parallel (s = 0.1)`) | with 1.5 % extra parameters, about 10 % and 19 % relative improvement over full fine-tuning on Something-Something v2 and HMDB51 (abstract) |
# | Steitz & Roth 2024 (Adapter+, CVPR) | compares Pre, Intermediate, Post and Parallel positions around a ViT's MLP; Post is after the block's residual add (`post_block`) | the Post position did best; with learnable channel-wise scaling (Adapter+), state-of-the-art average accuracy on VTAB without per-task tuning |
# | AdapterTune (the paper) | one adapter after every block, on the residual stream (`post_block`) | this course's method; its own placement ablation is in the paper, not reproduced here |
#
# Findings move with the backbone, the tasks and the recipe (scale and learning rate above all), which is why
# this notebook measures placements on its own target rather than taking a ranking from any one paper.

# %% [markdown]
# ## What to take away
#
# * Placements differ in accuracy, parameters and time at once: compare them on one plot (above: this
#   target's answer) before choosing.
# * Adapters in the last blocks only are cheap twice over: fewer parameters, and a frozen prefix that
#   runs once. Whether they are accurate enough depends on how much the early features must change.
