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
# The shipped results were produced by the command below; each run's file holds its full config.

# %%
SHIPPED = at.experiments.SHIPPED / "lecture_elbow"  # results shipped with the kit
prov = json.loads((SHIPPED / "provenance.json").read_text())
results = at.experiments.load_results(SHIPPED, method="adapter_tune")
base = at.RunConfig.from_dict({**results[0]["config"], "seed": 0})  # the shipped config and recipe, for live runs
display(Markdown(f"`{prov['command']}`  \n{prov['runs']} runs on {prov['machine']}, {prov['date'][:10]}, "
                 f"adaptertune_lite {prov['versions']['adaptertune_lite']}, torch {prov['versions']['torch']}.  \n"
                 f"Target **{base.dataset}**, {base.n_train} training images, {base.recipe.epochs} epochs, backbone {base.backbone}."))

# %% [markdown]
# ## The elbow
#
# Move the slider to see what each rank costs and buys. **Run live** trains one more seed at every rank
# (about a minute on a laptop CPU) and adds it to the error bars. Where widgets do not render, the
# static figure below shows the same plot at r = 16.

# %%
full_params = at.count_parameters(at.load_backbone(base.backbone, num_classes=10)).total  # what full FT trains
title = f"AdapterTune on {base.dataset}: accuracy vs rank"
fig = at.plots.lecture_figure(results, 16, full_params, title)  # the static version

# %%
demo = at.widgets.LectureDemo(results, base, at.experiments.runs_root() / "lecture", full_params, title)
demo.widget
