# %% [markdown]
# # 08 · LoRA, merging and task swapping
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/adaptertune-lite/adaptertune_lite/blob/main/notebooks/08_lora_and_merging.ipynb)
#
# Every student of this topic asks how an adapter relates to LoRA. In this notebook you will
#
# 1. build LoRA in a few cells, check that it changes nothing at step 0, and **merge** it into the weights;
# 2. see why a post-block adapter cannot be merged, and what that costs at inference (measured);
# 3. compare head-only, BitFit, AdapterTune, LoRA and full fine-tuning at matched trainable-parameter
#    budgets, over three seeds, with conclusions computed from the numbers;
# 4. sweep LoRA's rank under its three scaling conventions and measure what each does to the step size, under Adam
#    and under SGD;
# 5. serve three tasks from **one** frozen backbone by swapping adapter files;
# 6. look at the spectrum of the change full fine-tuning makes, and ask whether it predicts the elbow;
# 7. place AdapterTune among the other parameter-efficient methods (what the papers found).

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
# Versions and device first, so every number below can be traced to what produced it.

# %%
import copy
import logging
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display
from safetensors.torch import save_file
from torch import nn

logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # else a CUDA toolkit without a GPU (Colab's CPU runtime) warns
from torch.utils import benchmark  # inference latency, below

import adaptertune_lite as at
from adaptertune_lite.recipes import DEFAULT_TARGET
from adaptertune_lite.stats import paired_difference

for package, version in at.versions().items():
    print(f"{package:<18} {version}")
FAST = at.fast_mode()  # the FAST budget (a laptop CPU) or the full one; decided once, here
print("device:", at.describe_device(), "| FAST mode:", FAST)
at.course.plots.use_style()
device = at.get_device()


# %% [markdown]
# ## 1 · LoRA in a few cells
#
# LoRA (Hu et al. 2021; paper) keeps a linear layer's weight `W` (out × in) frozen and trains a
# low-rank update beside it: `y = W x + b + s · B A x`, with `A` of shape (r, in), `B` of shape (out, r)
# and a fixed scale `s`. `B` starts at **zero**, the same trick as AdapterTune's zero `W_up`: the
# model computes exactly the pretrained function until the first step. Here it is, from scratch:

# %%
class MyLoRALinear(nn.Module):
    """``base(x) + scale · B(A(x))``. ``x``: ``(..., in)`` -> ``(..., out)``; ``A``: (r, in), ``B``: (out, r)."""

    def __init__(self, base: nn.Linear, rank: int, scale: float = 1.0):
        super().__init__()
        self.base, self.scale = base, scale
        self.A = nn.Parameter(torch.empty(rank, base.in_features))
        nn.init.kaiming_uniform_(self.A, a=5 ** 0.5)  # drawn like an nn.Linear weight (LoRA's reference code)
        self.B = nn.Parameter(torch.zeros(base.out_features, rank))  # zero: no change at step 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * (x @ self.A.T) @ self.B.T


torch.manual_seed(0)
linear = nn.Linear(192, 768)  # the shape of a kit block's fc1
mine = MyLoRALinear(linear, rank=4)
h = torch.randn(8, 17, 192)  # (batch, tokens, width)
print("step 0, my LoRA == the linear layer, bitwise:", torch.equal(mine(h), linear(h)))

# %% [markdown]
# The kit's `at.LoRALinear` is the same layer (`adaptertune_lite/lora.py`). `at.add_lora` wraps the
# attention and MLP linears of every block (`qkv`, `proj`, `fc1`, `fc2`), and `print` shows each wrapper:

# %%
RANK_LORA = 2  # LoRA rank on 4 linears per block: about AdapterTune r = 16's trainable parameters (below)
backbone = at.load_backbone("kit_vit_tiny", num_classes=10).eval()
lora_model = at.add_lora(copy.deepcopy(backbone), rank=RANK_LORA)
print(lora_model.blocks[0].attn)

x = at.transforms.transform_for(backbone)(at.load_dataset(DEFAULT_TARGET, n_train=64).train.images[:32])  # (32, 3, 32, 32)
with torch.no_grad():
    print("step 0, LoRA model == backbone, bitwise:", torch.equal(lora_model(x), backbone(x)))

# %% [markdown]
# ### Merging
#
# The update is linear in `x`, so after training it folds into the weight: `W' = W + s · B A`.
# `at.merge_lora` does that and puts the plain `nn.Linear` back. We give every `B` values (as training
# would), merge, and compare the outputs and the model's keys.

# %%
g = torch.Generator().manual_seed(1)
with torch.no_grad():
    for layer in at.lora_layers(lora_model).values():
        layer.lora_B.copy_(0.05 * torch.randn(layer.lora_B.shape, generator=g))  # "trained" B
    unmerged = lora_model(x)
    merged_model = at.merge_lora(copy.deepcopy(lora_model))
    merged = merged_model(x)
print("LoRA layers left after merging:", len(at.lora_layers(merged_model)))
print("same state_dict keys as the original backbone:", list(merged_model.state_dict()) == list(backbone.state_dict()))
print(f"max |merged − unmerged| = {(merged - unmerged).abs().max():.2e}  (float rounding; the logits move by "
      f"{(unmerged - backbone(x)).abs().max():.2f} from the backbone's)")

# %% [markdown]
# ## 2 · Why a post-block adapter cannot be merged
#
# An adapter computes `A(h) = W_up · GELU(W_down · h + b_down) + b_up` on the residual stream. The GELU
# makes it **nonlinear** in `h`, so no matrix `M` gives `A(h) = M h` for every `h`, and it cannot be
# folded into the block's weights. We measure how far the best linear map is from a trained-looking
# adapter (least squares over many `h`) and from LoRA's update, which is exactly linear.

# %%
torch.manual_seed(0)
adapter = at.Adapter(192, rank=16, init="random")  # non-zero W_up: an adapter after training
hs = torch.randn(4096, 192)  # residual-stream vectors
with torch.no_grad():
    targets = {"adapter A(h)": adapter(hs), "LoRA s·BA h": hs @ lora_model.blocks[0].attn.proj.delta_weight().T}
for name, y in targets.items():
    inputs = torch.cat([hs, torch.ones(len(hs), 1)], 1)  # a linear map plus a bias
    M = torch.linalg.lstsq(inputs, y).solution
    residual = (inputs @ M - y).norm() / y.norm()
    print(f"{name:<14} best linear map leaves {100 * residual:.2f} % of it unexplained")

# %% [markdown]
# What it costs at inference: the adapter and unmerged LoRA run extra matmuls; merged LoRA runs the
# base model's. Measured here, one model after the other in the same run (`torch.utils.benchmark`, eval
# mode, no gradients), at batch 1 (one request) and 64.

# %%
models = {"base": backbone,
          "adapter r=16": at.add_adapters(copy.deepcopy(backbone), rank=16),
          f"LoRA r={RANK_LORA}, unmerged": lora_model,
          f"LoRA r={RANK_LORA}, merged": merged_model}
ROUNDS = 3  # the models take turns, three times; each keeps its fastest round (noise only ever adds time)
rows = []
for batch in (1, 64):
    xb = torch.randn(batch, 3, 32, 32, device=device)
    times = {name: [] for name in models}
    for _ in range(ROUNDS):
        for name, model in models.items():
            model = model.to(device).eval()
            with torch.no_grad():
                timer = benchmark.Timer("model(xb)", globals={"model": model, "xb": xb})
                times[name].append(1e3 * timer.blocked_autorange(min_run_time=0.2).median)  # ms, median over blocks
    rows += [{"batch": batch, "model": name, "ms per batch": min(t)} for name, t in times.items()]
latency = pd.DataFrame(rows)
latency["× base"] = latency["ms per batch"] / latency.groupby("batch")["ms per batch"].transform("first")
display(latency.style.format({"ms per batch": "{:.2f}", "× base": "{:.2f}"}).hide(axis="index")
        .set_caption(f"inference latency on {at.describe_device()}"))

# %% [markdown]
# (Latencies of a few milliseconds are noisy; read the ratios, and expect them to differ on a GPU,
# where a small model is bound by kernel launches rather than by arithmetic.)

# %% [markdown]
# ## 3 · Five methods at matched budgets
#
# | method | trains | merges away? |
# | --- | --- | --- |
# | head-only (linear probe) | the head | — |
# | BitFit (Ben Zaken et al. 2021) | every bias of the backbone, and the head | yes (it *is* the model) |
# | AdapterTune r = 16 | adapters after every block, and the head | no |
# | LoRA r = 2, s = 1 | `B A` on qkv, proj, fc1, fc2 of every block, and the head | yes |
# | full fine-tuning | everything | yes (a new model) |
#
# LoRA on four linears costs `r · (in + out)` per linear, `16 · d · r` per block; an adapter costs
# `2 · d · r + r + d`. So LoRA r = 2 and AdapterTune r = 16 train almost the same number of parameters.
# Every method runs at notebook 04's budget with the kit's recipe (`at.recipes.KIT_RECIPES`), three seeds, test
# accuracy reported; head-only, AdapterTune and full fine-tuning are 04's very runs, loaded from the results cache.

# %%
SEEDS = [0, 1, 2]  # three seeds in either mode: a difference needs a paired interval over >= 3
OUT = at.course.experiments.runs_root()  # the course's one results cache (a JSON per run): a run any notebook trained loads instantly
RANK_ADAPTER = 16  # AdapterTune's rank in the comparison

METHOD_CONFIGS = {  # method label -> what the run trains
    "head-only": dict(method="head_only"),
    "BitFit": dict(method="bitfit"),
    "AdapterTune": dict(method="adapter_tune", rank=RANK_ADAPTER),
    "LoRA": dict(method="lora", rank=RANK_LORA),
    "full FT": dict(method="full_finetune"),
}


def config(method: str, seed: int, **changes) -> at.RunConfig:
    """The kit's config for ``method`` on the default target at the course's budget (FAST or full, as in 04)."""
    return at.RunConfig.from_recipe(method, DEFAULT_TARGET, fast=FAST, seed=seed, **changes)


# %% [markdown]
# **Learning rates, chosen on validation.** Rankings of fine-tuning methods move with the recipe, and a
# method run at another method's learning rate is handicapped. So every method has its own rate, chosen
# by `benchmarks/kit_lr.py` on **validation** accuracy at this very budget (the best mean over three seeds
# of a small grid; its report is `benchmarks/results/kit_lr.md`); test accuracy never entered the choice.
# Notebook 07 runs such a choice live.

# %%
chosen = {label: at.recipes.KIT_RECIPES[c["method"]].lr for label, c in METHOD_CONFIGS.items()}  # the kit's rates
display(pd.DataFrame({"learning rate": chosen}).style.format("{:g}").set_caption("each method's rate (KIT_RECIPES)"))

# %%
configs = {(label, s): config(seed=s, lr=chosen[label], **c) for label, c in METHOD_CONFIGS.items() for s in SEEDS}
results = dict(zip(configs, at.sweep(list(configs.values()), OUT)))  # 04's runs load from disk

# %% [markdown]
# Step memory is counted exactly for one step of 64 images (`at.memory_breakdown`: weights, gradients,
# AdamW state and activations), not sampled, so it is the same on every machine.

# %%
step_memory = {}
for label, c in METHOD_CONFIGS.items():
    model = at.course.experiments.attach_method(at.load_backbone("kit_vit_tiny", num_classes=10), config(seed=0, **c))  # + adapters / LoRA
    step_memory[label] = at.memory_breakdown(model, x.repeat(2, 1, 1, 1), c["method"]).total  # MiB, batch 64

table = pd.DataFrame([{"method": label, "seed": s, "test accuracy (%)": 100 * r["test_acc"],
                       "trainable parameters": r["trainable_params"], "% of full FT": 100 * r["fraction_of_full"],
                       "ms per step": 1e3 * r["train_wall_time_s"] / len(r["loss"])}
                      for (label, s), r in results.items()])
by_method = table.groupby("method", sort=False)
summary = pd.DataFrame({"test accuracy (%)": by_method["test accuracy (%)"].mean(),
                        "± std over seeds": by_method["test accuracy (%)"].std(),
                        "trainable parameters": by_method["trainable parameters"].first(),
                        "% of full FT": by_method["% of full FT"].first(),
                        "ms per step": by_method["ms per step"].mean(), "step memory (MiB)": pd.Series(step_memory)})
display(summary.style.format({"test accuracy (%)": "{:.1f}", "± std over seeds": "{:.1f}", "trainable parameters": "{:,}",
                              "% of full FT": "{:.2f}", "ms per step": "{:.1f}", "step memory (MiB)": "{:.1f}"})
        .set_caption(f"{DEFAULT_TARGET}, {configs['LoRA', 0].n_train or 'all'} training images, mean over {len(SEEDS)} seeds; head-only's "
                     "steps run on cached features (its ms per step includes computing them)"))

# %% [markdown]
# Which differences are real? Paired by seed (same data order, same head initialisation), with a 95 %
# Student-t interval on the per-seed differences (`at.stats.paired_difference`):

# %%
acc = {label: [results[label, s]["test_acc"] for s in SEEDS] for label in METHOD_CONFIGS}
pairs = [("AdapterTune", "LoRA"), ("AdapterTune", "BitFit"), ("LoRA", "BitFit"), ("full FT", "AdapterTune"),
         ("full FT", "LoRA"), ("BitFit", "head-only")]
verdicts = {pair: paired_difference(acc[pair[0]], acc[pair[1]]) for pair in pairs}
display(Markdown("\n".join(f"* {d.sentence(*pair)}" for pair, d in verdicts.items())))
ratio = summary.loc["full FT", "trainable parameters"] / summary.loc["LoRA", "trainable parameters"]
print(f"full fine-tuning trains {ratio:.0f}× the parameters of LoRA r = {RANK_LORA}")

# %% [markdown]
# At equal trainable parameters, whether the adapter or LoRA wins is a property of the task, the
# recipe and the budget as much as of the method: the benchmarks at the end of this notebook found
# rankings that change with the recipe. Read the verdicts above, not the means.

# %% [markdown]
# ## 4 · LoRA's rank under three scaling conventions
#
# LoRA's update is `s · B A`. How `s` depends on the rank is a convention, and it matters:
#
# * `α/r` (the LoRA paper; peft's default): at a fixed α, more rank means a smaller scale;
# * `α/√r` (rsLoRA, Kalajdzievski 2023; paper): shrinks more slowly;
# * fixed `s` (what AdapterTune's adapters do, `s = 1`).
#
# Why it matters: `B` starts at zero, so the first step moves `B` only and changes the output by `s · ΔB · A x`, a sum
# over the `r` hidden units. Under **Adam** every entry of `B` moves by about the learning rate whatever its gradient
# (Adam divides by the gradient's own size; notebook 02 shows it for `W_up`), so the change grows like `s · r`.
# Under **SGD** the step is the gradient, itself proportional to `s`, so the change grows like `s² · r`. The
# convention decides whether the effective step grows with the rank, stays put, or shrinks, and the optimiser decides
# which convention keeps it put. We pick α so that all three give `s = 1` at r = 4, and measure the change one small
# step makes under each optimiser (`at.course.coupling`).

# %%
RANK_REF = 4  # the rank at which the three conventions agree (s = 1)
ALPHA = {"alpha/r": RANK_REF, "alpha/sqrt(r)": RANK_REF ** 0.5, "fixed": 1.0}  # α per convention: s(RANK_REF) = 1
STEP_RANKS = [1, 4, 16, 64]  # ranks for the step-size measurement (one step each: cheap)
STEP_LR = {"adam": 1e-4, "sgd": 1e-2}  # small enough that one step stays in the linear regime
small = at.load_dataset(DEFAULT_TARGET, backbone, n_train=64)
batch, chance = small.train, 100 / small.num_classes  # chance: the accuracy of a guess (%)
xb, yb = at.transforms.transform_for(backbone)(batch.images[:64]), batch.labels[:64]


coupling = at.course.coupling
steps_table = pd.DataFrame({(opt, s): {r: coupling.first_step_change(backbone, xb, yb, r, s, ALPHA[s], opt, STEP_LR[opt])
                                       for r in STEP_RANKS} for opt in STEP_LR for s in at.SCALINGS})
steps_table.index.name = "rank"
display(steps_table.style.format("{:.4f}").set_caption(
    f"relative change of the logits after one step (AdamW lr {STEP_LR['adam']:g}, SGD lr {STEP_LR['sgd']:g}), "
    f"s = 1 at r = {RANK_REF} for every convention"))
growth = pd.DataFrame([{"optimiser": opt, "convention": s, "measured": steps_table[opt, s].iloc[-1] / steps_table[opt, s].iloc[0],
                        "law s·r (Adam)": coupling.predicted_growth("adam", s, ALPHA[s], STEP_RANKS[0], STEP_RANKS[-1]),
                        "law s²·r (SGD)": coupling.predicted_growth("sgd", s, ALPHA[s], STEP_RANKS[0], STEP_RANKS[-1])}
                       for opt in STEP_LR for s in at.SCALINGS])
display(growth.style.hide(axis="index").format({c: "{:.3g}×" for c in growth.columns[2:]})
        .set_caption(f"the change at r = {STEP_RANKS[-1]} over the change at r = {STEP_RANKS[0]}: measured, and what each law predicts"))
grows = {s: growth.set_index(["optimiser", "convention"]).measured["adam", s] for s in at.SCALINGS}  # Adam: what fit uses
steady = {opt: coupling.steady_convention(dict(zip(at.SCALINGS, growth[growth.optimiser == opt].measured))) for opt in STEP_LR}
print(f"the convention whose first step changes least with the rank: under Adam {steady['adam']}, under SGD {steady['sgd']}")

# %% [markdown]
# Now the accuracy along the rank for each convention, beside AdapterTune's (x axis: trainable
# parameters, so the two methods are compared at equal cost; each at its learning rate above). In FAST mode
# the ten runs train on 500 images, half of section 3's, so the sweep costs about a minute.

# %%
LORA_RANKS = at.by_mode([1, 4, 16], [1, 2, 4, 8, 16, 32, 64])  # 3 ranks in FAST mode
ADAPTER_RANKS = at.by_mode([2, 16, 64], [1, 2, 4, 8, 16, 32, 64])
SWEEP_SEEDS = at.by_mode([0], [0, 1, 2])  # one seed in FAST mode: read the curves, not single points
SWEEP_N_TRAIN = at.by_mode(500, None)  # training images: 500 in FAST mode (half the cost of ten runs), all otherwise
lora_run = dict(lr=chosen["LoRA"], n_train=SWEEP_N_TRAIN)  # LoRA's rate from above, the sweep's images
sweep_configs = {("LoRA " + s, r, seed): config("lora", seed, rank=r, lora_alpha=ALPHA[s], lora_scaling=s, **lora_run)
                 if r != RANK_REF else config("lora", seed, rank=r, **lora_run)  # s = 1 at r = 4: one run for all three
                 for s in at.SCALINGS for r in LORA_RANKS for seed in SWEEP_SEEDS}
sweep_configs |= {("AdapterTune", r, seed): config("adapter_tune", seed, rank=r, lr=chosen["AdapterTune"], n_train=SWEEP_N_TRAIN)
                  for r in ADAPTER_RANKS for seed in SWEEP_SEEDS}
sweep_results = dict(zip(sweep_configs, at.sweep(list(sweep_configs.values()), OUT)))
curves = (pd.DataFrame([{"curve": c, "rank": r, "seed": s, "params": res["trainable_params"], "acc": 100 * res["test_acc"]}
                        for (c, r, s), res in sweep_results.items()])
          .groupby(["curve", "rank"], sort=False).mean().reset_index())

# %%
CURVE_LABEL = {"LoRA alpha/r": "LoRA α/r", "LoRA alpha/sqrt(r)": "LoRA α/√r", "LoRA fixed": "LoRA fixed s",
               "AdapterTune": "AdapterTune"}
CURVE_COLOUR = {"LoRA alpha/r": "tab:blue", "LoRA alpha/sqrt(r)": "tab:green", "LoRA fixed": "tab:purple",
                "AdapterTune": "tab:red"}  # four hues apart, none two oranges
fig, ax = plt.subplots(figsize=(7, 4.2))
color = {name: ax.plot(part.params, part.acc, marker="o", label=CURVE_LABEL[name], color=CURVE_COLOUR[name])[0].get_color()
         for name, part in curves.groupby("curve", sort=False)}
on_top = dict(fontsize=9, bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85))  # readable over a line
lora_points = curves[curves.curve.str.startswith("LoRA")].groupby("rank").agg(params=("params", "first"), acc=("acc", "max"))
for r, row in lora_points.iterrows():  # one label per LoRA rank (the three conventions share the x), above the highest point
    ax.annotate(f"LoRA r={r}", (row.params, row.acc), textcoords="offset points", xytext=(0, 8), ha="center", **on_top)
for _, row in curves[curves.curve == "AdapterTune"].iterrows():  # AdapterTune's ranks below right of its points, in its colour
    ax.annotate(f"AdapterTune r={row['rank']:.0f}", (row.params, row.acc), textcoords="offset points", xytext=(4, -15),
                ha="left", color=color["AdapterTune"], **on_top)
ax.set_xscale("log")
ax.margins(x=0.1, y=0.12)  # room for the labels
ax.set_xlabel("trainable parameters (log scale)")
ax.set_ylabel("test accuracy (%)")
ax.set_title(f"rank sweeps on {DEFAULT_TARGET}, {SWEEP_N_TRAIN or 'all'} training images, "
             f"{len(SWEEP_SEEDS)} seed{'s' * (len(SWEEP_SEEDS) > 1)}")
ax.legend(title="LoRA: s = 1 at r = 4")
plt.show()

# %%
diverged = curves[curves.acc < 2 * chance]  # within twice chance: the run did not learn
best = curves.drop(diverged.index).loc[lambda d: d.groupby("curve", sort=False).acc.idxmax()]
display(Markdown(
    f"Measured here: under `α/r` the first step's change at r = 64 is {grows['alpha/r']:.1f}× that at r = 1, under "
    f"`α/√r` {grows['alpha/sqrt(r)']:.1f}×, with a fixed scale {grows['fixed']:.1f}×.\n\n"
    + (("**Diverged** (accuracy within twice chance, the step too large for this rank at the learning rate chosen for "
        f"r = {RANK_LORA}): " + ", ".join(f"{row.curve} r = {row['rank']:.0f} ({row.acc:.0f} %)" for _, row in diverged.iterrows())
        + ".\n\n") if len(diverged) else "No run diverged.\n\n")
    + "Best rank per curve among the runs that trained (one seed in FAST mode: nearby ranks are within noise): "
    + ", ".join(f"{row.curve} r = {row['rank']:.0f} ({row.acc:.1f} %)" for _, row in best.iterrows()) + "."))

# %% [markdown]
# A rank sweep therefore changes two things at once: the capacity of the update and, unless the scale
# compensates, the size of its steps. Which convention compensates depends on the optimiser, as measured above:
# under Adam (what `fit` uses) it is the one printed for Adam, under SGD the one printed for SGD (rsLoRA's `α/√r` was
# derived for the SGD-like case). AdapterTune's fixed scale is the most coupled of the three under either. A fair
# comparison of ranks tunes the learning rate per rank, or uses the convention that keeps the step steady for its
# optimiser.

# %% [markdown]
# ## 5 · One backbone, many tasks
#
# The practical payoff of adapters: the backbone is frozen, so each new task is a small file (its adapters
# and head), and a server keeps **one** backbone in memory and swaps the files. We train AdapterTune on
# three targets, save each task's adapters, and then serve all three from one copy of the backbone.

# %%
TASKS = [DEFAULT_TARGET, "max_digit", "mnist5k"]  # three targets: two composed digit tasks and plain digits
task_dir = Path(tempfile.mkdtemp(prefix="adapter_files_"))  # where the per-task files go
files, trained_acc, task_data = {}, {}, {}
for task in TASKS:
    task_data[task] = at.load_dataset(task, backbone, n_train=at.by_mode(500, None))
    model = at.add_adapters(copy.deepcopy(backbone), rank=RANK_ADAPTER)
    model.reset_classifier(task_data[task].num_classes)
    at.fit(model, task_data[task].train, task_data[task].val, method="adapter_tune",
           recipe=at.recipes.kit_recipe("adapter_tune", task, fast=FAST))  # the kit's AdapterTune recipe; a progress bar per task
    trained_acc[task] = at.evaluate(model, task_data[task].test)
    files[task] = at.save_adapters(model, task_dir / f"{task}.safetensors")

full_copy = task_dir / "full_model.safetensors"
save_file({k: v.contiguous() for k, v in backbone.state_dict().items()}, str(full_copy))  # what full FT stores per task
sizes = pd.DataFrame({"file": [f.name for f in files.values()] + ["a fully fine-tuned copy"],
                      "KB": [f.stat().st_size / 1e3 for f in [*files.values(), full_copy]]})
display(sizes.style.format({"KB": "{:,.0f}"}).hide(axis="index").set_caption("storage per task"))

# %% [markdown]
# Serving: one backbone; for each request's task, load its file, evaluate, take the adapters out again.
# The accuracy must be exactly what the task had when it was trained, and after the last swap the
# backbone's weights must be bitwise the original's.

# %%
server = copy.deepcopy(backbone)  # the one frozen backbone in memory
original = {k: v.clone() for k, v in server.state_dict().items()}
for task in [*TASKS, *TASKS[::-1]]:  # swap in each task twice, in both orders
    at.load_adapters(server, files[task])
    served = at.evaluate(server, task_data[task].test)
    print(f"{task:<11} served {100 * served:.1f} %, when trained {100 * trained_acc[task]:.1f} %: "
          f"{'identical' if served == trained_acc[task] else 'DIFFERENT'}")
    at.remove_adapters(server)
state = server.state_dict()
same = all(torch.equal(state[k], v) for k, v in original.items() if not k.startswith("head."))
print("after the swaps, every backbone weight (all but the per-task head) is bitwise the original:", same)

# %% [markdown]
# ## 6 · Beyond: the spectrum of the task shift
#
# If what a task needs is a low-rank change of the weights, a rank-r update captures it and accuracy
# should saturate around that rank. We fine-tune the whole backbone on the default target, take each
# linear weight's change `ΔW = W_fine-tuned − W_pretrained`, and ask how much of its energy (the sum of
# squared singular values) the best rank-r approximation keeps.

# %%
full = copy.deepcopy(backbone)
data = task_data[DEFAULT_TARGET]
at.fit(full, data.train, data.val, method="full_finetune", recipe=at.recipes.kit_recipe("full_finetune", fast=FAST))  # with its progress bar
energy = {}  # layer -> fraction of ||ΔW||² in the top-r singular directions, r = 1..min(out, in)
for name, w in full.named_parameters():
    if name.startswith("blocks.") and name.endswith("weight") and w.ndim == 2:
        s = torch.linalg.svdvals((w - backbone.get_parameter(name)).detach().double())
        energy[name] = (s ** 2).cumsum(0) / (s ** 2).sum()
ranks_axis = np.arange(1, min(len(e) for e in energy.values()) + 1)
median_energy = np.median(np.stack([e[: len(ranks_axis)].numpy() for e in energy.values()]), axis=0)

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
ax1.plot(ranks_axis, 100 * median_energy)
ax1.set_xscale("log")
ax1.set_xlabel("rank r of the approximation (log scale)")
ax1.set_ylabel("energy of ΔW kept (%, median over layers)")
ax1.set_title("full fine-tuning's weight change")
for name, part in curves[curves.curve.str.startswith("LoRA")].groupby("curve", sort=False):
    ax2.plot(part["rank"], part.acc, marker="o", label=CURVE_LABEL[name], color=CURVE_COLOUR[name])
ax2.set_xscale("log")
ax2.set_xlabel("rank r of the LoRA update (log scale)")
ax2.set_ylabel("test accuracy (%)")
ax2.set_title(f"LoRA along the rank ({len(SWEEP_SEEDS)} seed{'s' * (len(SWEEP_SEEDS) > 1)})")
ax2.legend()
plt.show()

# %%
r90 = int(ranks_axis[np.argmax(median_energy >= 0.9)])
lora_curve = curves[curves.curve == "LoRA alpha/r"]  # the convention whose step size stays put along the rank
gain = lora_curve.acc - lora_curve.acc.iloc[0]
acc_r90 = int(lora_curve["rank"].iloc[int(np.argmax(gain >= 0.9 * gain.max()))]) if gain.max() > 0 else None
width = at.backbones.model_width(backbone)
if acc_r90 is None:
    verdict = "accuracy does not rise with the rank here, so there is no elbow to predict"
elif acc_r90 == LORA_RANKS[-1]:
    verdict = (f"accuracy is still rising at the largest rank tried, so the elbow lies at r ≥ {acc_r90}; "
               f"{'consistent with' if r90 >= acc_r90 else 'beyond'} the spectrum's r = {r90}")
elif 4 * acc_r90 <= r90:
    verdict = "accuracy saturates at a far smaller rank than the spectrum needs: the spectrum does **not** predict the elbow here"
elif acc_r90 >= 4 * r90:
    verdict = "accuracy keeps rising well past the spectrum's rank: the spectrum does **not** predict the elbow here"
else:
    verdict = "the two ranks are of the same order here"
display(Markdown(
    f"Measured: the median layer needs **r = {r90}** (of at most {width}) to keep 90 % of ΔW's energy. LoRA under `α/r` "
    "(the convention whose first step does not grow with the rank, so the sweep changes mostly capacity) "
    + (f"reaches 90 % of its accuracy gain over r = {LORA_RANKS[0]}…{LORA_RANKS[-1]} at **r = {acc_r90}**" if acc_r90 else
       f"gains nothing over r = {LORA_RANKS[0]}…{LORA_RANKS[-1]}") + f": {verdict}. "
    "Caveats: ΔW of full fine-tuning also holds weight decay's shrinkage and the noise of SGD, both spread over "
    "all directions, and accuracy can need only the few directions that matter for the labels, not the energy."))

# %% [markdown]
# ## 7 · Where AdapterTune sits (the literature; paper)
#
# What the papers report, not measured here:
#
# | method | what it trains | where | merges away | source (paper) |
# | --- | --- | --- | --- | --- |
# | VPT | prompt tokens added to the input (shallow) or every layer (deep) | token sequence | no | Jia et al., ECCV 2022 |
# | BitFit | the biases | every layer | yes | Ben Zaken et al., ACL 2022 |
# | SSF | a per-channel scale and shift after operations | every layer | yes | Lian et al., NeurIPS 2022 |
# | LoRA | `s · B A` beside a linear weight | attention (and MLP) linears | yes | Hu et al., ICLR 2022 |
# | Houlsby adapter | a bottleneck after attention and after the MLP | on each sublayer's output, before its residual add (twice per block) | no | Houlsby et al., ICML 2019 |
# | Pfeiffer adapter | one bottleneck after the MLP | on the MLP's output, before its residual add | no | Pfeiffer et al., EACL 2021 |
# | AdaptFormer | a ReLU bottleneck beside the MLP, output scaled by s = 0.1 | parallel to the MLP | no | Chen et al., NeurIPS 2022 |
# | Adapter+ | a bottleneck with a channel-wise scale, in the "Post" position | residual stream, after the block's residual add (as AdapterTune) | no | Steitz & Roth, CVPR 2024 |
# | AdapterTune | a zero-initialised bottleneck after each block | residual stream | no | the AdapterTune paper (this course) |
#
# The benchmarks' lesson (paper): V-PETL Bench (Xin et al., NeurIPS 2024 Datasets and Benchmarks) and
# the unifying study behind PETL_Vision (Mai et al., "Lessons and Insights from a Unifying Study of
# Parameter-Efficient Fine-Tuning in Visual Recognition", 2024) compare these methods under one protocol
# and report that rankings depend on the recipe, and that the differences between methods shrink when
# each method's hyper-parameters (its learning rate first) are tuned. Section 3 above is a small instance
# of the same protocol: every method with its own learning rate chosen on validation, and a difference
# claimed only when three paired seeds show it.

# %% [markdown]
# ## Summary
#
# * LoRA and AdapterTune share the zero-initialised trick: step 0 is the pretrained model, bit for bit.
# * LoRA is linear in its input and merges into the weights (no inference cost); a post-block adapter has a
#   nonlinearity on the residual stream and cannot be merged.
# * At matched trainable parameters the accuracies are compared above with paired intervals, and the
#   printed verdicts say where three seeds can tell them apart.
# * The rank and the scale are coupled under Adam: the scaling convention decides whether more rank means
#   bigger steps.
# * One frozen backbone serves many tasks from small adapter files, and swapping them leaves it untouched.
