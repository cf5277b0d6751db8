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
from adaptertune_lite.grading import check, demo, grading_mode

print(", ".join(f"{k} {at.versions()[k]}" for k in ("torch", "timm", "adaptertune_lite")), "|", at.describe_device())


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
    # YOUR CODE HERE
    raise NotImplementedError


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
    # YOUR CODE HERE
    raise NotImplementedError


# %%
check("ex04.cls_cka", cls_cka_per_block)

# %% [markdown]
# ## An experiment with your functions
#
# One short epoch of AdapterTune on the course's default target, from zero and from random
# initialisation, then your CLS CKA to the pretrained backbone, at step 0 and after the epoch. Lower
# CKA is not damage by itself (moving the features is what adaptation is for); notebook 03 measures
# damage on the pretraining task. The batch grader skips this cell (`grading_mode()`): it grades your
# functions, not this run.
#
# **How many images?** The plain CKA estimator is biased upward unless the number of examples `N` is
# much larger than the number of features `D`: with few examples, even unrelated features align by
# chance (two independent random 192-feature matrices score about 0.6 at `N = 128` and 0.28 at
# `N = 500`, but 0.04 at `N = 5000`). The kit ViT's CLS token has `D = 192` features and the held-out
# split has 500 images, so `N >> D` is out of reach here. The cell therefore also prints the
# **debiased** linear CKA, built on the unbiased HSIC estimator (Song et al., 2012; used for CKA by
# Nguyen, Raghu & Kornblith, 2021), which has no such offset: compare the two rows.

# %%
from adaptertune_lite.drift import block_outputs  # the kit's capture of the residual stream


def debiased_cka(X: torch.Tensor, Y: torch.Tensor) -> float:
    """Linear CKA from the unbiased HSIC estimator: no upward bias when N is not much larger than D."""
    def hsic(K: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
        n = K.shape[0]
        K, L = K - torch.diag(torch.diag(K)), L - torch.diag(torch.diag(L))  # zero diagonals
        KL = K @ L
        return (torch.trace(KL) + K.sum() * L.sum() / ((n - 1) * (n - 2)) - 2 * KL.sum() / (n - 2)) / (n * (n - 3))
    K, L = X.double() @ X.double().T, Y.double() @ Y.double().T  # linear kernels; the estimator centres them itself
    return float(hsic(K, L) / torch.sqrt(hsic(K, K) * hsic(L, L)))


# %%
if not grading_mode():
    backbone = at.load_backbone("kit_vit_tiny", num_classes=10)
    data = at.load_dataset(at.recipes.DEFAULT_TARGET, backbone, n_train=256)  # 256 images: seconds on a CPU
    x = data.val.transform(data.val.images)  # every held-out image: N = 500 for D = 192 features
    recipe = at.recipes.KIT_RECIPES["adapter_tune"].replace(epochs=1)  # the kit's AdapterTune recipe, for 1 epoch
    print(f"N = {len(x)} images, D = {at.backbones.model_width(backbone)} features; lr {recipe.lr:g} (KIT_RECIPES)")
    cls = lambda m: block_outputs(m, x, tokens="cls")  # noqa: E731  (the kit's capture, for the debiased row)
    row = lambda values: " ".join(f"{v:.3f}" for v in values)  # noqa: E731
    with demo("linear_cka", "cls_cka_per_block"):
        for init in ("zero", "random"):
            model = at.add_adapters(copy.deepcopy(backbone), rank=16, init=init)  # r=16: the paper's default
            for when in ("step 0", "1 epoch"):
                if when == "1 epoch":
                    at.fit(model, data.train, recipe=recipe, progress=False)
                print(f"{init:>6} init, {when:>7}  your CKA {row(cls_cka_per_block(model, backbone, x))}")  # CLS, per block
                print(f"{'':22}debiased {row(debiased_cka(a, b) for a, b in zip(cls(model), cls(backbone)))}")
