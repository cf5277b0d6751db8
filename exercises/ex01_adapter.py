# %% [markdown]
# # Exercise 01 · Build an adapter (7 points)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/adaptertune-lite/adaptertune_lite/blob/main/exercises/ex01_adapter.ipynb)
#
# Goes with notebook 01. Three graded tasks:
#
# | task | what you write | points |
# |---|---|---|
# | `ex01.adapter` | the `Adapter` module | 4 |
# | `ex01.param_count` | its parameter count as a formula | 1 |
# | `ex01.freeze` | freezing everything except adapters and head | 2 |
#
# Replace each `# YOUR CODE HERE` / `raise NotImplementedError` with your code, then run the
# `check(...)` cell below it: it tests your code on fresh random inputs against the kit's own
# implementation and says what it expected, what it saw, and where to look.

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
import torch
import torch.nn.functional as F
from torch import nn

import adaptertune_lite as at
from adaptertune_lite.grading import check, demo

print(", ".join(f"{k} {at.versions()[k]}" for k in ("torch", "timm", "adaptertune_lite")), "|", at.describe_device())


# %% [markdown]
# ## Task 1 · `Adapter` (4 points)
#
# An adapter is a bottleneck `A(h) = W_up · GELU(W_down · h + b_down) + b_up` with
# `W_down ∈ R^{r×d}` and `W_up ∈ R^{d×r}`. The block adds it to the stream: `h' = h + A(h)`.
# Your module returns `A(h)` only (the residual add happens where it is inserted).
#
# AdapterTune's initialisation: `W_down` Xavier-uniform, `b_down = 0`, **`W_up = 0`, `b_up = 0`**,
# so `A(h)` is exactly zero before training. Use `nn.Linear(d, r)` and `nn.Linear(r, d)`. GELU is the
# exact one (`F.gelu(x)` or `nn.GELU()`, as timm's ViT uses), not its tanh approximation. The check
# tests the shape, the initialisation (Xavier included), the parameter count and the forward pass.

# %%
class Adapter(nn.Module):
    """``A(h) = W_up · GELU(W_down · h + b_down) + b_up``.

    Args:
        dim: width ``d`` of the residual stream.
        rank: bottleneck width ``r``.

    Shapes: ``h`` is ``(..., dim)``; the output has the same shape.
    """

    def __init__(self, dim: int, rank: int):
        super().__init__()
        # YOUR CODE HERE
        raise NotImplementedError

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # YOUR CODE HERE
        raise NotImplementedError


# %%
check("ex01.adapter", Adapter)


# %% [markdown]
# ## Task 2 · the parameter count (1 point)
#
# Write the number of parameters of one adapter as a formula in `d` and `r` (no model needed).
# It is what the trainable-parameter tables of the course are made of.

# %%
def adapter_param_count(d: int, r: int) -> int:
    """Parameters of one adapter of width ``d`` and rank ``r``."""
    # YOUR CODE HERE
    raise NotImplementedError


# %%
check("ex01.param_count", adapter_param_count)


# %% [markdown]
# ## Task 3 · train only adapters and head (2 points)
#
# A model fresh from timm has **every** parameter trainable. A common mistake (the peft issue
# tracker is full of it) is to switch the adapters on and forget to switch the backbone off, or
# to freeze the head along with the backbone. Set `requires_grad` so that exactly the adapters'
# parameters and the classification head (`model.head`) train. `at.adapters_of(model)` lists the adapters.

# %%
def freeze_for_adapter_tune(model: nn.Module) -> nn.Module:
    """Freeze every parameter except the adapters' and the head's; return ``model``."""
    # YOUR CODE HERE
    raise NotImplementedError


# %%
check("ex01.freeze", freeze_for_adapter_tune)

# %% [markdown]
# ## Your code on the kit backbone
#
# The same function on the course's ViT with adapters after every block: how small is the
# trainable part? (`count_parameters` is the kit's own count.)

# %%
with demo("freeze_for_adapter_tune"):
    model = at.add_adapters(at.load_backbone("kit_vit_tiny", num_classes=10), rank=16)  # r=16: the paper's default
    print(at.count_parameters(freeze_for_adapter_tune(model)))
