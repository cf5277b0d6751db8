# %% [markdown]
# # Exercise 06 · Placement and rank under a parameter budget (5 points)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/adaptertune-lite/adaptertune_lite/blob/main/exercises/ex06_budget.ipynb)
#
# Goes with notebook 06. Three graded tasks:
#
# | task | what you write | points |
# |---|---|---|
# | `ex06.count` | adapter parameters of a placement, as a formula | 2 |
# | `ex06.best_rank` | the largest rank a budget allows | 1 |
# | `ex06.prepare` | the model you hand to training | 2 |

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

from torch import nn

import adaptertune_lite as at
from adaptertune_lite.grading import check, demo, grading_mode

print(", ".join(f"{k} {at.versions()[k]}" for k in ("torch", "timm", "adaptertune_lite")), "|", at.describe_device())

# %% [markdown]
# ## Task 1 · count before you build (2 points)
#
# Placements put one adapter per chosen block (`post_block`, `post_attn`, `post_mlp`, `parallel`)
# or two (`houlsby`: after attention and after the MLP). `at.resolve_blocks(blocks, depth)` turns
# `"all"`, `"last:2"`, `"every:2"` into block indices. Each adapter holds `2·d·r + r + d` parameters.

# %%
def adapter_params(width: int, depth: int, rank: int, placement: str, blocks: str) -> int:
    """Adapter parameters of ``placement`` on ``blocks`` of a ViT ``depth`` blocks deep and ``width`` wide."""
    ### BEGIN SOLUTION
    per_block = 2 if placement == "houlsby" else 1
    n_adapters = per_block * len(at.resolve_blocks(blocks, depth))
    return n_adapters * (2 * width * rank + rank + width)
    ### END SOLUTION


# %%
check("ex06.count", adapter_params)

# %% [markdown]
# ## Task 2 · the largest rank within a budget (1 point)
#
# Given a budget of adapter parameters, return the largest rank among 1, 2, 4, …, 256 that fits
# (`None` if even rank 1 does not). A rank whose adapters need exactly the budget fits.

# %%
def largest_rank(width: int, depth: int, placement: str, blocks: str, budget: int) -> int | None:
    """Largest power-of-two rank (1 … 256) whose adapters need at most ``budget`` parameters."""
    ### BEGIN SOLUTION
    fitting = [r for r in (2**k for k in range(9)) if adapter_params(width, depth, r, placement, blocks) <= budget]
    return max(fitting) if fitting else None
    ### END SOLUTION


# %%
check("ex06.best_rank", largest_rank)

# %% [markdown]
# ## Task 3 · hand training the right model (2 points)
#
# The classic silent bug: adapters are added to a copy, and the original is passed to training,
# so only the head learns (or everything does). Write the one function that prepares a model
# for AdapterTune: adapters added, only adapters and head trainable, and **that** model returned.

# %%
def prepare_for_training(backbone: nn.Module, rank: int, placement: str, blocks: str) -> nn.Module:
    """The model to train with AdapterTune: ``backbone`` with zero-initialised adapters, set trainable."""
    ### BEGIN SOLUTION
    model = at.add_adapters(copy.deepcopy(backbone), rank=rank, placement=placement, blocks=blocks)
    return at.set_trainable(model, "adapter_tune")
    ### END SOLUTION


# %%
check("ex06.prepare", prepare_for_training)

# %% [markdown]
# ## Choose under a budget, then measure
#
# A budget of 20,000 adapter parameters on the course's ViT: the largest rank for two
# placements, and one short training run of each (the batch grader skips it).

# %%
BUDGET = 20_000  # adapter parameters we allow ourselves
backbone = at.load_backbone("kit_vit_tiny", num_classes=10)
width, depth = at.backbones.model_width(backbone), len(backbone.blocks)
choices = {}
with demo("adapter_params", "largest_rank"):
    choices = {(p, b): largest_rank(width, depth, p, b, BUDGET) for p, b in (("post_block", "all"), ("houlsby", "last:2"))}
    print(choices)

# %%
if not grading_mode() and choices:
    data = at.load_dataset(at.recipes.DEFAULT_TARGET, backbone, n_train=512)  # 512 images: seconds on a CPU
    recipe = at.recipes.KIT_RECIPES["adapter_tune"].replace(epochs=2)  # the kit's AdapterTune recipe, for 2 epochs
    print(f"lr {recipe.lr:g} (KIT_RECIPES['adapter_tune'])")
    with demo("prepare_for_training"):
        for (placement, blocks), rank in choices.items():
            model = prepare_for_training(backbone, rank, placement, blocks)
            result = at.fit(model, data.train, data.val, recipe=recipe, progress=False)
            print(f"{placement:>10} on {blocks:<6} r={rank:<3} {result.summary()}")
