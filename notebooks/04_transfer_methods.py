# %% [markdown]
# # 04 · Head-only, AdapterTune or full fine-tuning?
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/adaptertune-lite/adaptertune_lite/blob/main/notebooks/04_transfer_methods.ipynb)
#
# In this notebook you will
#
# 1. train the three transfer methods on a target where the frozen features are not enough
#    (`left_digit`) and on one where they are (`mnist5k`), with several seeds;
# 2. measure what each costs: trainable parameters, wall time, memory and FLOPs per step, and where
#    adapters save time and where they do not;
# 3. plot accuracy against trainable parameters, the trade-off the method is about;
# 4. see what pretraining buys each method, and how they fare with very few images.

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
import json
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import Markdown, display

import adaptertune_lite as at
from adaptertune_lite.stats import paired_difference

for package, version in at.versions().items():
    print(f"{package:<18} {version}")
print("device:", at.describe_device(), "| FAST mode:", at.fast_mode())
P = at.profile()  # kit or paper: what every run below trains on ($ADAPTERTUNE_PROFILE chooses)
print(P)
at.course.plots.use_style()

# %% [markdown]
# ## The three methods
#
# | method | trains | stores per task |
# | --- | --- | --- |
# | head-only (linear probe) | the classification head | the head |
# | AdapterTune (r = 16, after every block, zero-init `W_up`) | adapters + head | adapters + head |
# | full fine-tuning | every weight | a whole copy of the model |
#
# Each run below is one `RunConfig` with the profile's recipe for its method (`adaptertune_lite.recipes`);
# `at.sweep` trains what is not on disk yet, so re-running a cell is instant. In the `kit` profile the
# comparison runs twice: on the default target, which needs adaptation, and on `mnist5k`, an easy transfer.
# In the `paper` profile it runs on the profile's dataset.

# %%
METHODS = ["head_only", "adapter_tune", "full_finetune"]
TARGETS = [P.dataset] + (["mnist5k"] if P.name == "kit" else [])  # the profile's target (+ the kit's easy transfer)
SEEDS = [0, 1, 2]  # three seeds in either mode: the differences are a few points
OUT = at.course.experiments.runs_root()  # the course's one results cache (a JSON per run): a run any notebook trained loads instantly


def config(method: str, target: str, seed: int) -> at.RunConfig:
    """The profile's config on its own target; the kit's recipe on the easy-transfer contrast."""
    return at.RunConfig.for_profile(method, P, seed=seed) if target == P.dataset else at.RunConfig.from_recipe(method, target, fast=P.fast, seed=seed)


configs = [config(m, t, s) for t in TARGETS for m in METHODS for s in SEEDS]
results = at.sweep(configs, OUT)

# %% [markdown]
# ## Accuracy and cost

# %%
rows = pd.DataFrame([{**r["config"], **{k: r[k] for k in ("test_acc", "trainable_params", "fraction_of_full",
                                                          "wall_time_s")}} for r in results])
summary = (rows.groupby(["dataset", "method"], sort=False)
           .agg(test_acc=("test_acc", "mean"), test_std=("test_acc", "std"), trainable=("trainable_params", "first"),
                pct_full=("fraction_of_full", "first"), time_s=("wall_time_s", "mean"))
           .reset_index())
summary["test_acc"], summary["test_std"], summary["pct_full"] = 100 * summary.test_acc, 100 * summary.test_std, 100 * summary.pct_full
LABELS = {"dataset": "target", "method": "method", "test_acc": "test accuracy (%)", "test_std": "± std over seeds",
          "trainable": "trainable parameters", "pct_full": "% of full fine-tuning's", "time_s": "seconds per run"}
NAMES = {"head_only": "head-only", "adapter_tune": "AdapterTune", "full_finetune": "full fine-tuning"}
display(summary.replace({"method": NAMES}).rename(columns=LABELS).style
        .format({LABELS["test_acc"]: "{:.1f}", LABELS["test_std"]: "{:.1f}", LABELS["trainable"]: "{:,}",
                 LABELS["pct_full"]: "{:.2f}", LABELS["time_s"]: "{:.1f}"})
        .set_caption(f"mean over {len(SEEDS)} seed{'s' * (len(SEEDS) > 1)}").hide(axis="index"))

# %% [markdown]
# Is head-only trained to convergence? It trains on cached features, so forty times the other methods' epochs cost
# seconds. To check, the same run at a quarter of its epochs (seed 0): if the full run gains less than a point of
# validation accuracy over it, head-only has converged, and its gap to the others is not a step-budget effect.

# %%
CONVERGED = 1.0  # points of validation accuracy: less than this from 4x the epochs counts as converged
for t in TARGETS:
    full_run = config("head_only", t, 0)
    quarter = at.sweep([full_run.replace(epochs=full_run.recipe.epochs // 4)], OUT, progress=False)[0]
    done = next(r for c, r in zip(configs, results) if c == full_run)
    rise = 100 * (done["val_acc"] - quarter["val_acc"])
    print(f"head-only on {t}: validation {100 * quarter['val_acc']:.1f} % after {full_run.recipe.epochs // 4} epochs, "
          f"{100 * done['val_acc']:.1f} % after {full_run.recipe.epochs}: "
          + ("converged." if rise < CONVERGED else "still rising: read its gap to the other methods as an upper bound."))

# %% [markdown]
# A reference point, not a method: logistic regression on the raw pixels of the same training images
# (`at.baselines.pixel_logreg`). A linear probe on the frozen features is worth its backbone only above it.

# %%
PIXEL_TARGETS = [t for t in TARGETS if t in at.OFFLINE_DATASETS]  # small grey images: pixels are a fair baseline
pixels = {t: 100 * at.baselines.pixel_logreg(t, n_train=at.recipes.n_train_for(t, fast=P.fast))["test_acc"] for t in PIXEL_TARGETS}
head_mean = summary.set_index(["dataset", "method"]).test_acc
display(Markdown("\n".join(
    f"* **{t}**: raw-pixel logistic regression {pixels[t]:.1f} %, head-only {head_mean[t, 'head_only']:.1f} % "
    f"({head_mean[t, 'head_only'] - pixels[t]:+.1f} points; one deterministic fit against a mean over {len(SEEDS)} seeds)"
    for t in PIXEL_TARGETS) or f"No raw-pixel baseline on {P.dataset}: a linear model on 224-pixel photos is no reference worth its cost."))

# %% [markdown]
# Which differences are real? Each seed trains all three methods with the same data order, so the runs
# are **paired**: the per-seed differences, with a 95 % Student-t interval (`at.stats.paired_difference`),
# tell a difference from seed noise. Only differences whose interval excludes zero are called differences.

# %%
acc = summary.set_index(["dataset", "method"]).test_acc
per_seed = rows.pivot_table(index=["dataset", "seed"], columns="method", values="test_acc")  # (target, seed) x method


def verdict(target: str, a: str, b: str):
    """Paired difference ``a − b`` on ``target`` over the seeds."""
    return paired_difference(per_seed.loc[target][a].to_numpy(), per_seed.loc[target][b].to_numpy())


lines = []
for t in TARGETS:
    gain, rest = verdict(t, "adapter_tune", "head_only"), verdict(t, "full_finetune", "adapter_tune")
    gap = verdict(t, "full_finetune", "head_only")
    lines.append(f"* **{t}**: {gain.sentence('AdapterTune', 'head-only')} {rest.sentence('full fine-tuning', 'AdapterTune')}")
    if gain.detected and gap.detected and gap.mean > 0:
        lines.append(f"  AdapterTune closes {100 * gain.mean / gap.mean:.0f} % of the gap between head-only and full fine-tuning.")
    else:
        lines.append("  No share of the gap is computed: AdapterTune's gain over head-only, or the gap itself, is not detected.")
display(Markdown("\n".join(lines)))
if P.name == "kit":
    easy_close = not any(verdict("mnist5k", a, b).detected for a, b in (("adapter_tune", "head_only"), ("full_finetune", "head_only")))
    display(Markdown(
        f"On `{P.dataset}` the frozen features mix the two digits, so the head alone cannot tell which is on the left; "
        "adapters change the features. On `mnist5k` " + (
            "the seeds detect no difference between head-only and the other methods: the frozen features suffice here."
            if easy_close else
            "even this easy transfer gains from changing the features: the frozen features are good but not all there is.")))

# %% [markdown]
# ### Where the memory goes
#
# Memory of one training step, split by what holds it. Weights, a gradient and AdamW's two moments per
# trainable parameter are counted from their sizes; activations are measured exactly (every tensor the
# forward and backward passes create, at their peak; `at.memory_breakdown`). Gradient checkpointing
# keeps only each block's input and recomputes the rest during the backward pass.

# %%
BATCH = 64 if P.name == "kit" else at.by_mode(8, 128)  # images per step, as in the recipes (8: a 224-px step on a CPU)
size = at.load_backbone(P.backbone, pretrained=False).pretrained_cfg["input_size"][-1]  # 32 (kit) or 224 pixels
x = torch.randn(BATCH, 3, size, size)  # (B, 3, size, size): memory and FLOPs depend on shapes, not on values
memory, flops = {}, {}
for m in METHODS:
    model = at.load_backbone(P.backbone, num_classes=10, pretrained=False)  # the architecture: no download
    if m == "adapter_tune":
        at.add_adapters(model, rank=16)
    memory[m] = at.memory_breakdown(model, x, m)
    flops[m] = at.step_flops(model, x, m)  # forward + the backward that actually runs, counted
    if m != "head_only":  # head-only sends no gradient through the blocks: nothing to recompute
        memory[m + " + checkpointing"] = at.memory_breakdown(model, x, m, grad_checkpointing=True)
mem = pd.DataFrame({m: {**vars(b), "total": b.total} for m, b in memory.items()}).T
display(mem.style.format("{:.1f}").set_caption(f"MiB for one step of {BATCH} images (fp32)"))

# %% [markdown]
# ## Speed: where adapters save, and where they do not
#
# Users of other kits are surprised that adapter tuning can take *longer* per epoch than full
# fine-tuning (AdaptFormer issue #36, a user's report: 2:30 against 2:00 per epoch on an RTX 3090,
# with 10 against 15 GB) and that activation memory barely shrinks (peft issue #2196). The FLOPs of
# one step, counted, say why: a frozen weight needs no gradient of its own, but the gradient must
# still flow *through* it to reach the adapters below.

# %%
forward = flops["head_only"]  # head-only: one forward pass (its backward stops at the head)
display(pd.DataFrame({"GFLOP per step": {m: f / 1e9 for m, f in flops.items()},
                      "forward passes": {m: f / forward for m, f in flops.items()}})
        .style.format("{:.2f}").set_caption(f"one training step of {BATCH} images on {P.backbone}"))

# %% [markdown]
# AdapterTune saves the weight-gradient matmuls (about a third of full fine-tuning's compute), the
# gradients and the optimiser state; it does not save the forward pass, the input gradients through
# every block above the first adapter, or most activations. What *does* make training many times
# faster is not running the frozen part at all: head-only on cached features, and placements in the last
# blocks with the frozen prefix cached (`Speedups(cache_frozen_prefix=True)`, notebook 06).
#
# The kit's speed benchmark (`benchmarks/speed.py`) measures all of this side by side, in one run per
# machine. Its figures, when this notebook runs from a clone of the repository:

# %%
results_dir = Path(at.__file__).resolve().parents[1] / "benchmarks" / "results"
reports = sorted(results_dir.glob("speed_*.json"))
for path in reports:
    bench = json.loads(path.read_text())
    table = pd.DataFrame([{"method": m["method"] + (" + checkpointing" if m["checkpointing"] else ""),
                           "trainable": m["trainable"], "GFLOP/step": m["gflop"], "images/s": m["img_s"],
                           "step memory (MiB)": m["memory_mib"]["total"]} for m in bench["methods"]])
    display(table.style.format({"trainable": "{:,}", "GFLOP/step": "{:.2f}", "images/s": "{:.0f}",
                                "step memory (MiB)": "{:.1f}"}).hide(axis="index")
            .set_caption(f"{bench['device']}: {bench['model']}, batch {bench['batch']} ({path.name})"))
    display(Markdown(
        f"* `fit` against a naive loop (fp32, PIL transforms per image, `.item()` every step): "
        f"**{bench['fit_vs_naive']['ratio']:.2f}x** the images per second.\n"
        f"* Head-only on cached features: **{bench['cached_head']['ratio']:.1f}x** faster than a backbone pass every "
        f"epoch ({bench['cached_head']['epochs']} epochs), same accuracy.\n"
        f"* Adapters in the last 2 of 6 blocks with the prefix cached: **{bench['prefix_cache']['ratio']:.2f}x** faster "
        f"per epoch, same accuracy.\n"
        f"* AdapterTune's step memory is **{100 * bench['memory_ratios']['adapter']:.0f} %** of full fine-tuning's, "
        f"{100 * bench['memory_ratios']['adapter_ckpt']:.0f} % with gradient checkpointing; MFU of an AdapterTune step "
        f"{100 * bench['mfu']['mfu']:.0f} % of the measured {bench['mfu']['dtype']} matmul rate."))
    if bench["model"] == P.backbone and bench["batch"] == BATCH:  # the same step as the FLOP table above
        report_gflop = next(m["gflop"] for m in bench["methods"] if m["method"] == "adapter_tune" and not m["checkpointing"])
        off = 100 * (report_gflop / (flops["adapter_tune"] / 1e9) - 1)  # % difference, report against this notebook
        if abs(off) > 0.5:
            display(Markdown(
                f"The report counts AdapterTune's step at {report_gflop:.2f} GFLOP, {off:+.1f} % off the "
                f"{flops['adapter_tune'] / 1e9:.2f} counted above for the same step. Both counts come from `at.step_flops`; the "
                f"report's header (`{path.with_suffix('.md').name}`) names the torch it was counted with, this notebook runs "
                f"torch {torch.__version__}: the FLOP counter of another torch version, not another step."))
if not reports:
    print(f"No speed report in {results_dir} (installed without the repository): see benchmarks/results/ on GitHub.")

# %% [markdown]
# ## Accuracy against trainable parameters
#
# The trade-off on a log scale: each marker is a method's mean over seeds, the bars one standard deviation.

# %%
fig, ax = plt.subplots(figsize=(7, 4.2))
for t, marker, dy in zip(TARGETS, "os", (6, -14)):  # labels above one target's markers, below the other's
    part = summary[summary.dataset == t]
    ax.errorbar(part.trainable, part.test_acc, yerr=part.test_std, marker=marker, ms=8, capsize=3, ls="none", label=t)
    for _, row in part.iterrows():
        ax.annotate(row.method.replace("_", " "), (row.trainable, row.test_acc), textcoords="offset points", xytext=(8, dy))
ax.set_xscale("log")
ax.margins(x=0.25)  # room for the labels
ax.set_xlabel("trainable parameters (log scale)")
ax.set_ylabel("test accuracy (%)")
ax.set_title("what each method trains, and what it buys")
ax.legend()
plt.show()

# %% [markdown]
# ## What pretraining buys each method
#
# The same three methods on a **randomly initialised** backbone of the same architecture. The gap
# to the pretrained rows is what pretraining (the kit's procedural images, or ImageNet in the paper profile)
# contributes to each.

# %%
RANDOM_SEEDS = at.by_mode([0], [0, 1, 2])  # one seed in FAST mode
random_configs = [replace(config(m, P.dataset, s), pretrained=False)
                  for m in METHODS for s in RANDOM_SEEDS]
random_results = at.sweep(random_configs, OUT)
rand = pd.DataFrame([{"method": r["config"]["method"], "test_acc": 100 * r["test_acc"]} for r in random_results])
rand = rand.groupby("method", sort=False).test_acc.mean()
table = pd.DataFrame({"pretrained backbone": [acc[P.dataset, m] for m in METHODS],
                      "random backbone": [rand[m] for m in METHODS]}, index=METHODS)
table["pretraining buys (points)"] = table["pretrained backbone"] - table["random backbone"]
display(table.style.format("{:.1f}").set_caption(f"{P.dataset}, test accuracy %"))

# %% [markdown]
# ## With very few images
#
# The paper finds AdapterTune ahead of full fine-tuning on 10 of its 15 dataset-backbone pairs (paper,
# with ImageNet ViTs, full-size datasets). The kit's benchmark measures the few-shot regime, k images
# per class, 3 seeds, on the kit backbone (`benchmarks/kit_backbone.py`); its table, when this
# notebook runs from a clone of the repository:

# %%
report = Path(at.__file__).resolve().parents[1] / "benchmarks" / "results" / "kit_vit_tiny.md"
if P.name != "kit":
    print("The few-shot table is the kit backbone's: see notebook 07 and the kit report for the paper's setting.")
elif report.is_file():
    text = report.read_text()
    few = text[text.index("## Few-shot regime"):text.index("## Live sweep")]
    display(Markdown(few.replace("## ", "#### ")))
else:
    print(f"{report} is not here (installed without the repository): see benchmarks/results/kit_vit_tiny.md on GitHub.")

# %%
kit_params = at.count_parameters(at.load_backbone("kit_vit_tiny", num_classes=10)).total
display(Markdown("" if P.name != "kit" else
    f"On the kit's small backbone full fine-tuning stays ahead on `left_digit` even with 5–25 images per class (the "
    f"table above): with {kit_params / 1e6:.1f} M parameters, a small learning rate and 100 steps it does not overfit enough "
    "to lose its advantage. The paper's regime (ImageNet ViTs with 5–86 M parameters; paper) is where the regularising "
    "effect of training few parameters matters more."))

# %% [markdown]
# ## The paper's setting
#
# Everything above ran in the profile printed at the top. On a GPU with internet (Colab) the `paper` profile is
# chosen for you and this notebook compares the three methods on a pretrained ViT-S/16 and Oxford-IIIT Pets;
# `ADAPTERTUNE_PROFILE=paper` asks for it anywhere. Notebook 07 reproduces a whole row of the paper's table.

# %% [markdown]
# ## What to take away

# %%
pct = summary.set_index(["dataset", "method"]).pct_full[P.dataset, "adapter_tune"]
easy = "" if P.name != "kit" else (
    f"* On the easy transfer (`mnist5k`) head-only reaches {acc['mnist5k', 'head_only']:.1f} % against "
    f"{acc['mnist5k', 'full_finetune']:.1f} % for full fine-tuning, at a fraction of the cost ("
    + ("no difference detected over the seeds" if easy_close else "a difference the seeds detect") + ").\n")
display(Markdown(
    easy +
    f"* On `{P.dataset}`, AdapterTune reaches {acc[P.dataset, 'adapter_tune']:.1f} % against "
    f"{acc[P.dataset, 'head_only']:.1f} % (head-only) and {acc[P.dataset, 'full_finetune']:.1f} % (full FT), "
    f"training {pct:.2f} % of full fine-tuning's parameters (the paper reports about 0.92 % at r = 16 on its "
    f"benchmark; paper). {verdict(P.dataset, 'adapter_tune', 'head_only').sentence('AdapterTune', 'head-only')}\n"
    f"* Memory per training step: AdapterTune {memory['adapter_tune'].total:.0f} MiB against "
    f"{memory['full_finetune'].total:.0f} MiB for full FT and {memory['head_only'].total:.0f} MiB for head-only. Few "
    f"trainable parameters save gradients and optimiser state, but activations fall only from "
    f"{memory['full_finetune'].activations:.0f} to {memory['adapter_tune'].activations:.0f} MiB: the backward pass "
    f"still runs through every block to reach the first adapter. Gradient checkpointing brings them to "
    f"{memory['adapter_tune + checkpointing'].activations:.0f} MiB for one extra forward pass.\n"
    f"* Compute per step: AdapterTune {flops['adapter_tune'] / forward:.1f} forward passes against "
    f"{flops['full_finetune'] / forward:.1f} for full FT: it skips weight gradients, not the backward pass."))
