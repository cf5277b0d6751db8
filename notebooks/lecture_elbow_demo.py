# %% [markdown]
# # Lecture demo · The rank elbow
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/adaptertune-lite/adaptertune_lite/blob/main/notebooks/lecture_elbow_demo.ipynb)
#
# For presenting: opens instantly from a sweep shipped with the kit, one slider over the rank, and a
# **Run live** button that trains a fresh seed at every rank in front of the class.
# The full story (what rank buys, the fit, the rule for the elbow) is notebook 05.

# %%
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("adaptertune_lite") is None:  # Colab or a bare Python: install the kit
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "git+https://github.com/adaptertune-lite/adaptertune_lite"], check=True)

# %%
import json

from IPython.display import Markdown, display

import adaptertune_lite as at

print("adaptertune_lite", at.__version__, "| device:", at.describe_device())
at.plots.use_style()

# %% [markdown]
# ## Where the numbers come from
#
# In the `kit` profile the curve is a sweep shipped with the kit, produced by the command printed below (each
# run's file holds its full config). In the `paper` profile nothing ships: the demo shows notebook 05's sweep
# from the run cache, running what is missing first (run 05 before the lecture and it opens instantly).

# %%
P = at.profile()  # kit or paper: $ADAPTERTUNE_PROFILE chooses
print(P)
if P.name == "kit":
    SHIPPED = at.experiments.SHIPPED / "lecture_elbow"  # results shipped with the kit
    prov = json.loads((SHIPPED / "provenance.json").read_text())
    results = at.experiments.load_results(SHIPPED, method="adapter_tune")
    base = at.RunConfig.from_dict({**results[0]["config"], "seed": 0})  # the shipped config and recipe, for live runs
    source = (f"`{prov['command']}`  \n{prov['runs']} runs on {prov['machine']}, {prov['date'][:10]}, "
              f"adaptertune_lite {prov['versions']['adaptertune_lite']}, torch {prov['versions']['torch']}.")
else:
    base = at.RunConfig.for_profile("adapter_tune", P)  # notebook 05's sweep: the same configs, so the same cache
    results = at.experiments.run_elbow(base, [1, 2, 4, 8, 16, 32, 64], [0], at.experiments.runs_root() / "05_rank_elbow")
    source = f"notebook 05's sweep in the {P.name} profile ({len(results)} runs, from the run cache)."
display(Markdown(f"{source}  \nTarget **{base.dataset}**, {base.n_train or 'all'} training images, {base.recipe.epochs} epochs, "
                 f"backbone {base.backbone}."))

# %% [markdown]
# ## The elbow
#
# Move the slider to see what each rank costs and buys. **Run live** trains one more seed at every rank
# (about a minute on a laptop CPU) and adds it to the error bars. Where widgets do not render, the
# static figure below shows the same plot at r = 16.

# %%
full_params = at.count_parameters(at.load_backbone(base.backbone, num_classes=10, pretrained=False)).total  # what full FT trains
title = f"AdapterTune on {base.dataset}: accuracy vs rank"
fig = at.plots.lecture_figure(results, 16, full_params, title)  # the static version

# %%
demo = at.widgets.LectureDemo(results, base, at.experiments.runs_root() / "lecture", full_params, title)
demo.widget
