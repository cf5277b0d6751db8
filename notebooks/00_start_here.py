# %% [markdown]
# # 00 · Start here
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/adaptertune-lite/adaptertune_lite/blob/main/notebooks/00_start_here.ipynb)
#
# Welcome to **adaptertune_lite**, a hands-on course on *AdapterTune*: small, zero-initialised,
# low-rank residual adapters inserted into a **frozen** Vision Transformer (ViT). Only the adapters
# and the classification head learn; the pretrained backbone stays exactly as it was.
#
# **Why care?** Fine-tuning every weight of a large pretrained model costs memory, time and a full
# copy of the model per task. Adapters train a small fraction of the parameters (the paper reports about
# 0.92 % of full fine-tuning's at rank 16), and a task then needs only a small file of adapter and
# head weights. The key trick, zero initialisation, makes the adapted network start *exactly* at the
# pretrained function: before the first update every adapter adds an exact zero, the features are the
# pretrained ones bit for bit, and the first updates are not driven through a random up-projection
# (notebook 02 proves it; notebook 03 measures what random initialisation does instead).
#
# ## The course
#
# | notebook | what you do | reading + running (estimate) |
# | --- | --- | --- |
# | 00 start here | set up, check versions, device and FAST mode | 5 min |
# | 01 build an adapter | take a ViT apart, write an adapter from scratch, count its parameters | 20 min |
# | 02 zero-init identity | prove the output is bit-for-bit unchanged at step 0, follow the gradients | 20 min |
# | 03 drift from random init | see how random initialisation damages the pretrained function | 20 min |
# | 04 transfer methods | head-only vs AdapterTune vs full fine-tuning: accuracy, parameters, time, memory | 20 min |
# | 05 rank elbow | sweep the rank, fit the curve, find the elbow, explore with a widget | 20 min |
# | 06 placement | five placements and four block choices; cache the frozen prefix | 20 min |
# | 07 the paper's setting | one row of the paper's table end to end: lr chosen on validation, 3 seeds, cost on a T4 | 15 min |
# | 08 LoRA and merging | LoRA from scratch, merging, BitFit/AdapterTune/LoRA at equal budgets, task swapping | 30 min |
# | lecture elbow demo | for presenting: the elbow from shipped results, one slider, a live run | 5 min |
#
# **Graded exercises** (`exercises/ex01_adapter` … `ex07_lora_merge`, one per notebook 01–06 and 08, 2–4 tasks
# each with their points): `make lab` copies them into `my_work/`, where your answers stay yours. Each
# task ends in a `check(...)` cell that tests your code on fresh inputs and tells you what to fix.

# %% [markdown]
# ## Setup
#
# In JupyterLab started with `make lab` the kit is already installed. On Google Colab (or any
# Python without it) this cell installs the published package (or, if that fails, the repository's code), keeping
# the torch that Colab already has, and says what it did.

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
# Versions and device come first, so that any result below can be traced to what produced it.

# %%
import adaptertune_lite as at

for package, version in at.versions().items():
    print(f"{package:<18} {version}")
print("device:", at.describe_device())

# %% [markdown]
# ## FAST mode
#
# Every experiment in the course runs in one of two sizes with **the same code**:
#
# * **FAST** (on automatically without a GPU, and in CI): small data, few epochs, small sweeps, so
#   each notebook finishes in a minute or two on a laptop CPU (`benchmarks/results/course_time_cpu.md` has the
#   whole course, solutions included, timed on a 2-core machine). The notebooks share one run cache, so a run
#   one notebook trained loads instantly in the next.
# * **full**: the real recipe (more data, more epochs; on a GPU with a timm ViT if you like).
#
# Set `ADAPTERTUNE_FAST=1` or `ADAPTERTUNE_FAST=0` in the environment to choose yourself. Every recipe lives in
# one place, `at.recipes`: the official AdapterTune recipe, and the kit backbone's recipe per method (its rate is in
# the method's record, `at.methods.METHODS`) with a FAST and a full budget per dataset. A recipe is always asked for
# with its budget named (`fast=...`): nothing in the kit reads FAST mode behind your back.

# %%
FAST = at.fast_mode()
recipe = at.recipes.kit_recipe("adapter_tune", "mnist5k", fast=FAST)  # a Recipe: lr, weight decay, epochs, ... for this mode
print(f"FAST mode is {'on' if FAST else 'off'}; AdapterTune on mnist5k here: {recipe}, "
      f"{at.recipes.kit_n_train('mnist5k', fast=FAST) or 'all'} training images")
print("the official recipe (timm ViTs at 224 px, the paper's code):", at.recipes.OFFICIAL_RECIPE)

# %% [markdown]
# ## Profiles: the course's scale
#
# One setting picks what notebooks 04–07, their widgets and the CLI train on:
#
# * **`kit`**: the kit's own small ViT on the offline targets (FAST on a CPU; the full recipe on a GPU without
#   internet);
# * **`paper`**: a pretrained timm ViT (ViT-S/16 augreg) on a dataset from the paper (Oxford-IIIT Pets), with budgets
#   sized for a Colab T4.
#
# It is chosen automatically (a CUDA GPU and the Hugging Face Hub reachable, or the weights and data already
# cached: `paper`; otherwise `kit`), and `ADAPTERTUNE_PROFILE=kit` or `=paper` overrides the choice.

# %%
profile = at.profile()  # the one call that reads FAST mode and the setting; every notebook and the CLI make it once
print(f"active profile: {profile.name} ({profile.backbone} on {profile.dataset}), because {profile.why}")

# %% [markdown]
# ## Offline by default
#
# Pretrained ImageNet weights and datasets such as CIFAR-100 need the internet. So the kit ships
# its own small ViT, **`kit_vit_tiny`**, pretrained by the kit's own script on procedurally generated
# images (fractals from random iterated function systems), and uses image data that ships inside packages:
# `mnist5k` (5,000 real MNIST digits) and scikit-learn's `digits`. With a GPU and internet, change
# one line to `at.load_backbone("vit_small_patch16_224", ...)` and `at.load_dataset("cifar100", ...)`.
#
# The doctor checks everything the course needs, and says what is missing:

# %%
from adaptertune_lite.course.cli import doctor

status = doctor()  # 0 when everything the course needs is present
assert status == 0, "Something the course needs is missing: see the doctor's report above."

# %% [markdown]
# ## A first look
#
# The kit backbone is an ordinary timm `VisionTransformer`. Its provenance record says how it was
# pretrained; every number comes from the pretraining run itself.

# %%
backbone = at.load_backbone("kit_vit_tiny", num_classes=10)  # 10 classes: a fresh head for digits
provenance = at.kit_provenance("kit_vit_tiny")
print(type(backbone).__name__, "with", len(backbone.blocks), "blocks of width", backbone.embed_dim)
print(f"pretrained on {provenance['images_seen']:,} procedural images; "
      f"held-out accuracy on its {provenance['architecture']['pretrain_classes']} pretraining classes: "
      f"{provenance['heldout_accuracy']:.1%}")
print("parameters:", at.count_parameters(backbone))

# %% [markdown]
# You are ready. Continue with **01 · Build an adapter**.
