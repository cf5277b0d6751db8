# %% [markdown]
# # Exercise 07 · Merge LoRA, prove it, and read a comparison (6 points)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/adaptertune-lite/adaptertune_lite/blob/main/solutions/ex07_lora_merge.ipynb)
#
# Goes with notebook 08. Three graded tasks:
#
# | task | what you write | points |
# |---|---|---|
# | `ex07.merge` | the merged weight of a LoRA layer | 2 |
# | `ex07.verify` | a check that a merge is right, one that can fail | 2 |
# | `ex07.decide` | which of two methods wins, from per-seed numbers | 2 |

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
import copy

import numpy as np
import torch
from scipy import stats

import adaptertune_lite as at
from adaptertune_lite.grading import check, demo

print(", ".join(f"{k} {at.versions()[k]}" for k in ("torch", "timm", "adaptertune_lite")), "|", at.describe_device())


# %% [markdown]
# ## Task 1 · merge (2 points)
#
# A LoRA layer computes `y = x Wᵀ + b + s · (x Aᵀ) Bᵀ` with `W` of shape (out, in), `A` (r, in),
# `B` (out, r) and the scale `s`. Return the single weight `W'` with `y = x W'ᵀ + b`, as a new tensor
# (leave `W` as it is: the frozen backbone is shared).

# %%
def merged_weight(W: torch.Tensor, A: torch.Tensor, B: torch.Tensor, scale: float) -> torch.Tensor:
    """``W'`` (out, in) such that ``x W'ᵀ = x Wᵀ + scale · (x Aᵀ) Bᵀ`` for every ``x``."""
    return W + scale * (B @ A)


# %%
check("ex07.merge", merged_weight)


# %% [markdown]
# ## Task 2 · a check that can fail (2 points)
#
# A check that passes whatever it is given proves nothing. Write `merge_error`: the largest absolute
# difference, over the rows of `x` (n, in), between the merged layer's output `x W_mergedᵀ + b` and the
# LoRA layer's output computed *the unmerged way*. It must be about 0 for a right merge and large for a
# wrong one (the grader hands it both).

# %%
def merge_error(W_merged: torch.Tensor, W: torch.Tensor, b: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                scale: float, x: torch.Tensor) -> float:
    """``max |(x W_mergedᵀ + b) − (x Wᵀ + b + scale · (x Aᵀ) Bᵀ)|`` over every entry, as a float."""
    unmerged = x @ W.T + b + scale * (x @ A.T) @ B.T
    return float((x @ W_merged.T + b - unmerged).abs().max())


# %%
check("ex07.verify", merge_error)

# %% [markdown]
# Now on a real layer: the kit's `at.LoRALinear` around a kit block's `fc1`, with `B` given values as
# training would. Your merge and your check, and the kit's `at.merge_lora` beside them.

# %%
torch.manual_seed(0)
backbone = at.load_backbone("kit_vit_tiny", num_classes=10)
layer = at.LoRALinear(copy.deepcopy(backbone.blocks[0].mlp.fc1), rank=4, alpha=8)  # s = α / r = 2
with torch.no_grad(), demo("merged_weight", "merge_error"):
    layer.lora_B.normal_(std=0.05)  # "trained"
    W, b, A, B = (t.detach() for t in (layer.base.weight, layer.base.bias, layer.lora_A, layer.lora_B))
    x = torch.randn(256, W.shape[1])  # 256 token vectors
    print("my merge:            error", merge_error(merged_weight(W, A, B, layer.scale), W, b, A, B, layer.scale, x))
    print("merge without scale: error", merge_error(merged_weight(W, A, B, 1.0), W, b, A, B, layer.scale, x))


# %% [markdown]
# ## Task 3 · read a comparison (2 points)
#
# Two methods, the same seeds, test accuracies per seed. Decide as the course does: take the paired
# differences `a_i − b_i`, build the 95 % Student-t interval of their mean (`stats.t.ppf`, `n − 1`
# degrees of freedom), and return `"a"` or `"b"` (whichever is higher) only if the interval excludes 0
# and there are at least 3 seeds; otherwise return `"no difference"`.

# %%
def decide(a: list[float], b: list[float]) -> str:
    """``"a"``, ``"b"`` or ``"no difference"`` from paired per-seed accuracies ``a`` and ``b``."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if len(d) < 3:
        return "no difference"
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    if d.mean() - half > 0:
        return "a"
    if d.mean() + half < 0:
        return "b"
    return "no difference"


# %%
check("ex07.decide", decide)

# %% [markdown]
# Three made-up tables for practice (not measured: notebook 08 measures the real ones). Read them with
# your function:

# %%
lora = [0.842, 0.835, 0.851]  # LoRA r = 2, seeds 0, 1, 2 (test accuracy)
adapter = [0.790, 0.785, 0.793]  # AdapterTune r = 16, the same seeds
bitfit = [0.801, 0.742, 0.866]  # BitFit, the same seeds
with demo("decide"):
    print("LoRA vs AdapterTune:", decide(lora, adapter))
    print("AdapterTune vs BitFit:", decide(adapter, bitfit))
