# %% [markdown]
# # Exercise 04 · Measure drift with CKA (5 points)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/adaptertune-lite/adaptertune_lite/blob/main/exercises/ex04_drift.ipynb)
#
# Goes with notebook 03. Two graded tasks:
#
# | task | what you write | points |
# |---|---|---|
# | `ex04.cka` | linear CKA between two feature matrices | 3 |
# | `ex04.cls_cka` | CKA of the CLS token after each block, adapted vs pretrained | 2 |

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
from adaptertune_lite.grading import check, grading_mode

print({k: at.versions()[k] for k in ("torch", "timm", "adaptertune_lite")}, "|", at.describe_device())

# %% [markdown]
# ## Task 1 · linear CKA (3 points)
#
# Linear centred kernel alignment (Kornblith et al., 2019) compares two representations of the
# same `N` examples: with column-centred `X (N, D1)` and `Y (N, D2)`,
# `CKA = ‖YᵀX‖²_F / (‖XᵀX‖_F · ‖YᵀY‖_F)`. It is 1 for the same features up to rotation and
# isotropic scaling. Forgetting to centre is the usual mistake: real features have large means.

# %%
def linear_cka(X: torch.Tensor, Y: torch.Tensor) -> float:
    """Linear CKA of ``X (N, D1)`` and ``Y (N, D2)``; a float in [0, 1]."""
    ### BEGIN SOLUTION
    X = X.double() - X.double().mean(0)
    Y = Y.double() - Y.double().mean(0)
    return float((Y.T @ X).norm() ** 2 / ((X.T @ X).norm() * (Y.T @ Y).norm()))
    ### END SOLUTION


# %%
check("ex04.cka", linear_cka)

# %% [markdown]
# ## Task 2 · CKA of the CLS token, block by block (2 points)
#
# Where in the network do features move? Capture the residual stream after every block of both
# models (a forward hook on each of `model.blocks` sees its `(B, T, D)` output), keep the CLS
# token (`[:, 0]`, shape `(B, D)`) and compare the two models block by block.

# %%
def cls_cka_per_block(model: nn.Module, reference: nn.Module, x: torch.Tensor) -> list[float]:
    """CKA between ``model``'s and ``reference``'s CLS token after each block, on images ``x (B, 3, H, W)``."""
    ### BEGIN SOLUTION
    def cls_tokens(m: nn.Module) -> list[torch.Tensor]:
        out = []
        hooks = [b.register_forward_hook(lambda mod, args, o: out.append(o[:, 0])) for b in m.blocks]
        m.eval()
        with torch.no_grad():
            m(x)
        for hook in hooks:
            hook.remove()
        return out
    return [linear_cka(a, b) for a, b in zip(cls_tokens(model), cls_tokens(reference))]
    ### END SOLUTION


# %%
check("ex04.cls_cka", cls_cka_per_block)

# %% [markdown]
# ## An experiment with your functions
#
# One short epoch of AdapterTune on the course's default target, from zero and from random
# initialisation, then your CLS CKA to the pretrained backbone. Lower CKA is not damage by itself
# (moving the features is what adaptation is for); notebook 03 measures damage on the pretraining
# task. The batch grader skips this cell (`grading_mode()`): it grades your functions, not this run.

# %%
if not grading_mode():
    backbone = at.load_backbone("kit_vit_tiny", num_classes=10)
    data = at.load_dataset(at.recipes.DEFAULT_TARGET, backbone, n_train=256)  # 256 images: seconds on a CPU
    x = data.val.transform(data.val.images[:128])  # (128, 3, 32, 32) held-out images
    for init in ("zero", "random"):
        model = at.add_adapters(copy.deepcopy(backbone), rank=16, init=init)  # r=16: the paper's default
        at.fit(model, data.train, recipe=at.Recipe(epochs=1, lr=5e-3), progress=False)  # 1 epoch, the kit's AdapterTune lr
        print(f"{init:>6} init, CLS CKA per block:", " ".join(f"{v:.3f}" for v in cls_cka_per_block(model, backbone, x)))
