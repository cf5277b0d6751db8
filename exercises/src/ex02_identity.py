# %% [markdown]
# # Exercise 02 · Insert an adapter by hand and prove the identity (5 points)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/adaptertune-lite/adaptertune_lite/blob/main/exercises/ex02_identity.ipynb)
#
# Goes with notebook 02. Two graded tasks:
#
# | task | what you write | points |
# |---|---|---|
# | `ex02.post_mlp` | a post-MLP (Houlsby-style) adapter inserted into a timm `Block` | 3 |
# | `ex02.identity_gap` | the largest change in logits between two models | 2 |

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

import torch
from torch import nn

import adaptertune_lite as at
from adaptertune_lite.grading import check, demo

print(", ".join(f"{k} {at.versions()[k]}" for k in ("torch", "timm", "adaptertune_lite")), "|", at.describe_device())

# %% [markdown]
# ## Task 1 · a post-MLP adapter (3 points)
#
# A timm block computes `x1 = x + ls1(attn(norm1(x)))` then `x2 = x1 + ls2(mlp(norm2(x1)))`.
# A **post-MLP** adapter reads the MLP's output `m` and adds to it, before the residual add:
# `m' = m + A(m)`. Insert it without changing the block's own parameter names: register the
# adapter as a child of `block.mlp` (so its parameters belong to the block) and apply it with a
# forward hook (`register_forward_hook`: a hook that returns a value replaces the output).

# %%
def add_post_mlp_adapter(block: nn.Module, adapter: nn.Module) -> None:
    """Attach ``adapter`` after ``block.mlp`` in place: the MLP's output ``m`` becomes ``m + adapter(m)``."""
    ### BEGIN SOLUTION
    block.mlp.adapter = adapter
    block.mlp.register_forward_hook(lambda module, args, output: output + module.adapter(output))
    ### END SOLUTION


# %%
check("ex02.post_mlp", add_post_mlp_adapter)

# %% [markdown]
# ## Task 2 · measure the change in logits (2 points)
#
# To prove that zero-initialised adapters leave the network as it was, compare logits. Careful:
# a model in **train** mode may be random (timm's `drop_path_rate > 0` drops whole blocks at
# random), so two forward passes differ even without adapters. Measure in eval mode, without
# building a graph.

# %%
def max_logit_change(model: nn.Module, adapted: nn.Module, x: torch.Tensor) -> float:
    """Largest ``|adapted(x) - model(x)|`` over the batch and classes, both models in eval mode.

    ``x``: ``(B, 3, H, W)`` images; returns a Python float."""
    ### BEGIN SOLUTION
    model.eval(), adapted.eval()
    with torch.no_grad():
        return float((adapted(x) - model(x)).abs().max())
    ### END SOLUTION


# %%
check("ex02.identity_gap", max_logit_change)

# %% [markdown]
# ## On the kit backbone
#
# Your measurement on the course's ViT, with the kit's adapters after every block: zero init
# gives exactly `0.0`, a random up-projection does not.

# %%
backbone = at.load_backbone("kit_vit_tiny", num_classes=10)
x = torch.randn(8, 3, 32, 32)  # 8 random images at the kit's 32 px
with demo("max_logit_change"):
    for init in ("zero", "random"):
        adapted = at.add_adapters(copy.deepcopy(backbone), rank=16, init=init)  # r=16: the paper's default
        print(f"{init:>6} init: max |Δlogit| = {max_logit_change(backbone, adapted, x):.3g}")
