# %% [markdown]
# # Exercise 05 · The rank elbow (4 points)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/adaptertune-lite/adaptertune_lite/blob/main/solutions/ex05_rank_elbow.ipynb)
#
# Goes with notebook 05. Three graded tasks:
#
# | task | what you write | points |
# |---|---|---|
# | `ex05.configs` | a rank sweep as experiment configs | 1 |
# | `ex05.elbow` | the elbow of a rank curve by a stated rule | 2 |
# | `ex05.lora_scale` | LoRA's scale convention | 1 |

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

# %%
import numpy as np

import adaptertune_lite as at
from adaptertune_lite.course.experiments import RunConfig, grid, runs_root, sweep
from adaptertune_lite.grading import check, demo, grading_mode

print(", ".join(f"{k} {at.versions()[k]}" for k in ("torch", "timm", "adaptertune_lite")), "|", at.describe_device())


# %% [markdown]
# ## Task 1 · a rank sweep as configs (1 point)
#
# The experiments engine runs a list of `RunConfig`s and caches each result under its key.
# Build the configs of an AdapterTune rank sweep on the course's default target with the FAST
# budget: `RunConfig.from_recipe("adapter_tune", at.recipes.DEFAULT_TARGET, fast=True)` is one
# run; `grid(base, rank=..., seed=...)` makes every combination.

# %%
def rank_sweep_configs(ranks: list[int], seeds: list[int]) -> list[RunConfig]:
    """One FAST AdapterTune config per (rank, seed) on the default target."""
    base = RunConfig.from_recipe("adapter_tune", at.recipes.DEFAULT_TARGET, fast=True)
    return grid(base, rank=ranks, seed=seeds)


# %%
check("ex05.configs", rank_sweep_configs)


# %% [markdown]
# ## Task 2 · the elbow, by a stated rule (2 points)
#
# "Where the curve flattens" must be a rule, or two people find two elbows. The course's rule, the one
# notebook 05 summarises its curves with (`at.robust_elbow`): average the seeds, then the elbow is the
# **smallest swept rank whose mean accuracy reaches `share` of the gain from the smallest to the largest
# swept rank**, i.e. `acc(r) ≥ acc(r_min) + share · (acc(r_max) − acc(r_min))`. With `share = 0.9`: the
# first rank with 90 % of the gain. It uses the whole curve's gain, not one comparison with the last grid
# point, whose own noise would decide.

# %%
def elbow_rank(ranks: list[int], accuracies, share: float = 0.9) -> int:
    """The elbow of ``accuracies`` (``(n_ranks,)`` or ``(n_ranks, n_seeds)``, in [0, 1]) by the rule above."""
    mean = np.asarray(accuracies, dtype=float).reshape(len(ranks), -1).mean(1)
    target = mean[0] + share * (mean[-1] - mean[0])
    return next(r for r, acc in zip(ranks, mean) if acc >= target)


# %%
check("ex05.elbow", elbow_rank)


# %% [markdown]
# ## Task 3 · the scale convention (1 point)
#
# AdapterTune multiplies the adapter's output by a fixed `s` (1.0 here), whatever the rank.
# LoRA multiplies its update `B A x` by `α / r`. So in a LoRA rank sweep at fixed `α`, raising `r`
# also shrinks the scale: a rank sweep then changes two things at once. Mixing the two conventions
# (α where α/r is meant) is a common source of "LoRA does not learn" reports.

# %%
def lora_scaling(alpha: float, r: int) -> float:
    """The factor LoRA multiplies its low-rank update by."""
    return alpha / r


# %%
check("ex05.lora_scale", lora_scaling)

# %%
with demo("lora_scaling"):
    print("LoRA α=16 at r = 1, 4, 16, 64:", [lora_scaling(16, r) for r in (1, 4, 16, 64)], "| AdapterTune: 1.0 at every r")

# %% [markdown]
# ## Your sweep, your elbow
#
# Three ranks, one seed, through the engine (about 20 s on a laptop CPU; cached after the first
# run). The batch grader skips it.

# %%
if not grading_mode():
    with demo("rank_sweep_configs", "elbow_rank"):
        ranks = [1, 4, 64]  # three ranks spread over the grid (notebook 05 ran them in FAST mode: they load instantly)
        results = sweep(rank_sweep_configs(ranks, [0]), runs_root(), progress=False)
        accuracy = [r["val_acc"] for r in results]
        print("validation accuracy:", {r: f"{100 * a:.1f} %" for r, a in zip(ranks, accuracy)})
        print("your elbow (90 % of the gain):", elbow_rank(ranks, accuracy, 0.9))
