# %% [markdown]
# # Lecture demo · The rank elbow
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/adaptertune-lite/adaptertune_lite/blob/main/notebooks/lecture_elbow_demo.ipynb)
#
# **One question: how much adapter rank does a frozen ViT need?**
#
# For presenting: run all before the lecture, then show one section per slide (JupyterLab's
# *View → Presentation Mode* enlarges the text). Each section makes one point, and its output shows it:
#
# 1. these are real runs; 2. what rank buys; 3. try any rank, or train it live; 4. the budget shapes the curve.
#
# The full story (the fit, the rank–step-size coupling, the data) is notebook 05.

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
import json

from IPython.display import Markdown, display

import adaptertune_lite as at

print("adaptertune_lite", at.__version__, "| device:", at.describe_device())
at.course.plots.use_style()

# %% [markdown]
# ## 1 · These are real runs
#
# In the `kit` profile the curve is a sweep shipped with the kit, produced by the command printed below (each
# run's file holds its full config). In the `paper` profile nothing ships: the demo shows notebook 05's sweep
# from the run cache, running what is missing first (run 05 before the lecture and it opens instantly).

# %%
P = at.profile()  # kit or paper: $ADAPTERTUNE_PROFILE chooses
print(P)
if P.name == "kit":
    SHIPPED = at.course.experiments.SHIPPED / "lecture_elbow"  # results shipped with the kit
    prov = json.loads((SHIPPED / "provenance.json").read_text())
    results = at.course.experiments.load_results(SHIPPED, method="adapter_tune")
    base = at.RunConfig.from_dict({**results[0]["config"], "seed": 0})  # the shipped config and recipe, for live runs
    source = (f"`{prov['command']}`  \n{prov['runs']} runs on {prov['machine']}, {prov['date'][:10]}, "
              f"adaptertune_lite {prov['versions']['adaptertune_lite']}, torch {prov['versions']['torch']}.")
else:
    base = at.RunConfig.for_profile("adapter_tune", P)  # notebook 05's sweep: the same configs, so the same cache
    results = at.course.experiments.run_elbow(base, [1, 2, 4, 8, 16, 32, 64], [0], at.course.experiments.runs_root())
    source = f"notebook 05's sweep in the {P.name} profile ({len(results)} runs, from the run cache)."
display(Markdown(f"{source}  \nTarget **{base.dataset}**, {base.n_train or 'all'} training images, {base.recipe.epochs} epochs, "
                 f"backbone {base.backbone}."))

# %% [markdown]
# ## 2 · What rank buys
#
# Accuracy against rank, with the elbow: the smallest rank that reaches 90 % of the gain from the smallest to
# the largest rank, with each seed's own elbow. The sentence above the figure is computed from these runs.

# %%
ranks, acc = at.course.experiments.by_rank(results)  # acc: (n_ranks, n_seeds) test accuracies
N_TEST = len(at.load_dataset(base.dataset).test)  # test images: their noise is part of the elbow's
elbow = at.robust_elbow(ranks, acc, n_test=N_TEST)
display(Markdown(f"### {elbow.sentence()}\n{at.course.widgets.budget_caption(results)}"))
full_params = at.count_parameters(at.load_backbone(base.backbone, num_classes=10, pretrained=False)).total  # what full FT trains
title = f"AdapterTune on {base.dataset}: accuracy vs rank"
fig = at.course.plots.lecture_figure(results, 16, full_params, title)  # the static figure (where widgets do not render)

# %% [markdown]
# ## 3 · Try any rank, or train it live
#
# The slider shows what each rank costs and buys. **Run live** trains one more seed at every rank (about a
# minute on a laptop CPU) with its progress above the figure, and adds it to the error bars.

# %%
demo = at.course.widgets.LectureDemo(results, base, at.course.experiments.runs_root(), full_params, title)
demo.widget

# %% [markdown]
# ## 4 · The budget shapes the curve
#
# A short run favours the adapters that move fastest, and under Adam with a fixed scale the first step grows in
# proportion to the rank (notebook 08 §4 measures it), so the larger ranks move faster and part of a
# short-training elbow is a training-length effect. The kit benchmark ran the same sweep at the course's full
# recipe (3 seeds); its results ship in the package, so in the `kit` profile both elbows are computed here.

# %%
full_runs = at.course.experiments.full_recipe_elbow(ranks) if P.name == "kit" else []
if full_runs:
    full_ranks, full_acc = at.course.experiments.by_rank(full_runs)
    full_elbow = at.robust_elbow(full_ranks, full_acc, n_test=N_TEST)
    display(Markdown(f"* **this demo** ({base.recipe.epochs} epochs, {base.n_train or 'all'} images): {elbow.sentence()}\n"
                     f"* **full recipe** ({full_runs[0]['config']['epochs']} epochs, all images): {full_elbow.sentence()}\n\n"
                     f"Accuracy at r = {ranks[0]} → r = {ranks[-1]}: this demo {100 * acc.mean(1)[0]:.1f} → {100 * acc.mean(1)[-1]:.1f} %, "
                     f"full recipe {100 * full_acc.mean(1)[0]:.1f} → {100 * full_acc.mean(1)[-1]:.1f} %."))
else:
    print("No full-recipe sweep ships for this profile (it ships for the kit profile): set ADAPTERTUNE_PROFILE=kit to see it.")
