# %% [markdown]
# # 03 · Drift: what random initialisation does to a pretrained network
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/adaptertune-lite/adaptertune_lite/blob/main/notebooks/03_drift_random_init.ipynb)
#
# Notebook 02 showed that zero-initialised adapters leave the network untouched. Here we compare three
# initialisations of the up-projection. For one seed every init draws the same `W_down` in every block
# (notebook 02 checks it), so the comparison differs in `W_up` only. We measure three things:
#
# * **(a)** the pretrained function damaged *before any learning*: the kit backbone's own pretraining head,
#   on images of its pretraining classes;
# * **(b)** representation drift over the first training steps: linear CKA between adapted and pretrained
#   features, per block, over all tokens and for the CLS token;
# * **(c)** early loss curves and final accuracy, paired by seed.
#
# (b) and (c) come from the same training runs, with the kit's AdapterTune recipe.

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

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display
from tqdm.auto import tqdm

import adaptertune_lite as at
from adaptertune_lite.drift import block_cka
from adaptertune_lite.recipes import kit_n_train, kit_recipe

print({k: at.versions()[k] for k in ("torch", "timm", "adaptertune_lite")}, "|", at.describe_device())
at.course.plots.use_style()

# %%
INITS = ["zero", "small", "random"]  # W_up = 0 | N(0, 1e-4^2) | Xavier-uniform
SEEDS = [0, 1, 2]  # every comparison uses the same seeds for every init
RANK = 16  # adapter bottleneck width
BACKBONE = "kit_vit_tiny"  # the kit backbone: it keeps its pretraining head, which part (a) needs

# %% [markdown]
# ## (a) Damage before any learning
#
# **Why this test is fair:** the kit backbone was pretrained to classify procedural images (512 classes of
# fractals). We keep its pretraining head (`num_classes=None`), insert adapters, and measure its accuracy on fresh
# images of those same classes, with no training at all. Any drop is damage done by initialisation alone.

# %%
pretrained = at.load_backbone(BACKBONE, num_classes=None).eval()  # the full pretrained network, head included
recipe = at.kit_provenance(BACKBONE)["recipe"]  # how it was pretrained: which procedural classes
probe = at.load_dataset("procedural", pretrained, n_fractal=recipe["n_fractal"], n_glyph=recipe["n_glyph"],
                        class_seed=recipe["seed"], per_class=at.by_mode(1, 10))  # fresh images of its classes
images = torch.cat([probe.train.images, probe.val.images, probe.test.images])  # (N, 3, 32, 32) uint8
labels = torch.cat([probe.train.labels, probe.val.labels, probe.test.labels])  # (N,)
x_pre = probe.train.transform(images)
print(f"{len(labels)} images of {probe.num_classes} pretraining classes")


def head_accuracy(logits: torch.Tensor) -> float:
    """Top-1 accuracy of pretraining-head ``logits`` (N, classes) on the probe images."""
    return (logits.argmax(-1) == labels).float().mean().item()


with torch.no_grad():
    before = pretrained(x_pre)  # (N, classes) the pretrained network's logits
baseline = head_accuracy(before)
top2 = before.topk(2, dim=-1).values  # (N, 2) the two largest pretraining logits
margin = (top2[:, 0] - top2[:, 1]).min().item()  # the smallest gap any prediction has to its runner-up
rows = []
for init in INITS:
    for seed in SEEDS:
        torch.manual_seed(seed)
        adapted = at.add_adapters(copy.deepcopy(pretrained), rank=RANK, init=init).eval()
        with torch.no_grad():
            after = adapted(x_pre)  # (N, classes)
        rows.append({"init": init, "seed": seed, "accuracy": head_accuracy(after),
                     "max |Δ logit|": (after - before).abs().max().item(),
                     "predictions changed": (after.argmax(-1) != before.argmax(-1)).sum().item()})
damage = pd.DataFrame(rows)
summary = damage.groupby("init", sort=False).agg(mean=("accuracy", "mean"), std=("accuracy", "std"),
                                                 max_shift=("max |Δ logit|", "max"),
                                                 changed=("predictions changed", "mean"))
display(Markdown(f"**pretraining-head accuracy at step 0** (no adapters: {baseline:.3f}; "
                 f"smallest top-1 margin {margin:.3g} logits)"),
        summary.style.format({"mean": "{:.4f}", "std": "{:.4f}", "max_shift": "{:.2e}", "changed": "{:.1f}"}))

# %%
fig, ax = plt.subplots(figsize=(7, 3.8))
sns.barplot(damage, x="init", y="accuracy", errorbar="sd", ax=ax)
ax.axhline(baseline, ls="--", color="k", lw=1, label="pretrained, no adapters")
ax.set_xlabel("initialisation of the up-projection")
ax.set_ylabel("pretraining-head accuracy (fraction)")
ax.set_title("Before any training step")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes, never over a bar
plt.show()
at.course.claims.claim((damage.query("init == 'zero'")["accuracy"] == baseline).all(), "zero init keeps the pretrained accuracy exactly")
at.course.claims.claim(summary.loc["random", "mean"] < baseline, "random init lowers it before any learning")
small_shift, small_changed = summary.loc["small", "max_shift"], summary.loc["small", "changed"]
display(Markdown(
    f"Why **small is (nearly) zero** here: small init moves no logit by more than {small_shift:.2e}, and changes "
    f"{small_changed:.1f} of {len(labels)} predictions on average (only those whose top-1 margin is that thin; the "
    f"smallest margin is {margin:.3g}), so its accuracy is {summary.loc['small', 'mean']:.4f} against {baseline:.4f}. "
    "The function did change (notebook 02 measures it); accuracy is too coarse to see most of it."))

# %% [markdown]
# ## Training runs for (b) and (c)
#
# Each init is trained with the kit's AdapterTune recipe (`kit_recipe`: AdamW, cosine schedule with warm-up,
# gradient clipping) for every seed; the same recipe and the same batches for every init. For the first
# seed a callback of `fit` measures drift on a fixed probe batch at chosen steps.

# %%
FAST = at.fast_mode()  # the FAST budget on a laptop CPU, the full one on a GPU
recipe = kit_recipe("adapter_tune", "mnist5k", fast=FAST)  # a Recipe: lr, weight decay, batch size, epochs (FAST or full)
backbone = at.load_backbone(BACKBONE, num_classes=10).eval()  # fresh 10-class head for digits
digits = at.load_dataset("mnist5k", backbone, n_train=kit_n_train("mnist5k", fast=FAST))  # the recipe's training images
probe_x = digits.val.transform(digits.val.images[:128])  # (128, 3, 32, 32): fixed probe batch
steps_total = -(-len(digits.train) // recipe.batch_size) * recipe.epochs
MEASURE_AT = sorted({0, 1, 2, 5, 10, steps_total // 2, steps_total})  # optimiser steps at which drift is measured
print(recipe, f"| {len(digits.train)} training images, {steps_total} steps per run")

drift = {}  # (init, step, tokens) -> CKA per block
features = {}  # (init, step) -> pooled features of the probe batch, (128, embed_dim)


def recorder(model, init):
    """A fit callback that measures drift after the steps in MEASURE_AT (and now, at step 0)."""
    def measure(done: int) -> None:
        dev = next(model.parameters()).device
        reference, x = backbone.to(dev), probe_x.to(dev)
        for tokens in ("all", "cls"):
            drift[(init, done, tokens)] = block_cka(model, reference, x, tokens=tokens)
        was = model.training
        with torch.no_grad():
            features[(init, done)] = at.extract_features(model.eval(), x).cpu()
        model.train(was)

    measure(0)
    return lambda event: measure(event["step"] + 1) if event["step"] + 1 in MEASURE_AT else None


results = []
for init, seed in tqdm([(i, s) for i in INITS for s in SEEDS], desc="runs (init × seed)"):
    torch.manual_seed(seed)  # the same W_down for every init
    model = at.add_adapters(copy.deepcopy(backbone), rank=RANK, init=init)
    callbacks = [recorder(model, init)] if seed == SEEDS[0] else []
    r = at.fit(model, digits.train, digits.val, method="adapter_tune", recipe=recipe, seed=seed, progress=False,
               callbacks=callbacks)
    results.append({"init": init, "seed": seed, "val_acc": r.val_acc, "loss": r.history["loss"]})
final = pd.DataFrame(results)
backbone.cpu()

# %% [markdown]
# ## (b) Representation drift during training
#
# **Linear CKA** (centred kernel alignment) compares two sets of features of the same inputs: 1.0 means the
# same representation up to rotation and scale. We compare every block's output with the pretrained
# backbone's, over **all tokens** (CLS and patches pooled into one `(B·T, D)` matrix) and for the **CLS token**
# alone (`(B, D)`, what the head reads). Values sit between 0.9 and 1, so we plot **1 − CKA on a log axis**:
# the distance from "unchanged", where the inits' difference is what the eye sees.
#
# Moving away from the pretrained features is what adaptation is *for*: a lower CKA alone is not damage.
# The damage measure is (a), the pretraining head's accuracy; CKA shows *where* and *when* features move.

# %%
cka = pd.DataFrame([{"init": i, "step": s, "tokens": t, "block": b, "1 - CKA": max(1 - v, 0.0)}
                    for (i, s, t), values in drift.items() for b, v in enumerate(values)])
last = cka.block.max()
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True)
for ax, tokens in zip(axes, ("all", "cls")):
    for init in INITS:
        d = cka.query("init == @init and tokens == @tokens and block == @last and step > 0")
        ax.plot(d["step"], d["1 - CKA"], "o-", label=init)
    ax.set_xscale("symlog", linthresh=1)
    ax.set_yscale("log")
    ax.set_xlabel("optimiser step")
    ax.set_title(f"last block, {'all tokens' if tokens == 'all' else 'CLS token'}")
axes[0].set_ylabel("1 − linear CKA to pretrained (log)")
axes[1].legend(title="init")
fig.suptitle("How far the last block's features moved from the pretrained ones")
fig.tight_layout()
plt.show()

fig, ax = plt.subplots(figsize=(6.5, 3.8))
for init in INITS:
    for tokens, style in (("all", "-"), ("cls", "--")):
        d = cka.query("init == @init and tokens == @tokens and step == 0")
        ax.plot(d["block"], d["1 - CKA"].clip(lower=1e-12), style, marker="o", label=f"{init}, {tokens}",
                color={"zero": "C0", "small": "C1", "random": "C2"}[init])
ax.set_yscale("log")
ax.set_xlabel("block (output of)")
ax.set_ylabel("1 − linear CKA at step 0 (log)")
ax.annotate("values ≤ 1e-12 (0 included) are drawn at 1e-12", (0, 1e-12), textcoords="offset points", xytext=(0, 7), fontsize="small", color="C0")
ax.set_title("Drift before any training step, block by block")
ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes
plt.show()

step0 = {t: {i: drift[(i, 0, t)] for i in INITS} for t in ("all", "cls")}
at.course.claims.claim(all(v == 1.0 or abs(v - 1.0) < 1e-9 for v in step0["all"]["zero"] + step0["cls"]["zero"]),
                "at step 0 zero init's features are the pretrained ones (CKA 1)")
at.course.claims.claim(min(step0["all"]["random"]) < min(step0["all"]["zero"]) and min(step0["cls"]["random"]) < 1.0,
                "at step 0 random init's features have already moved (CKA below 1)")
table_b = pd.DataFrame({f"{t}, step {s}": {i: drift[(i, s, t)][-1] for i in INITS}
                        for t in ("all", "cls") for s in (0, steps_total)})
display(Markdown("**linear CKA to the pretrained features, last block** (all tokens and CLS token):"),
        table_b.style.format("{:.4f}"))

# %% [markdown]
# ## (c) Early loss and final accuracy, paired by seed

# %%
fig, ax = plt.subplots()
for init in INITS:
    curves = np.array(final.query("init == @init")["loss"].tolist())  # (seeds, steps)
    mean, std = curves.mean(0), curves.std(0)
    steps = np.arange(1, len(mean) + 1)
    ax.plot(steps, mean, label=f"{init} (mean of {len(SEEDS)} seeds)")
    ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
ax.set_xlabel("optimiser step")
ax.set_ylabel("training loss (cross-entropy, nats)")
ax.set_title("Early training loss by initialisation")
ax.legend()
plt.show()
early = {init: np.array(final.query("init == @init")["loss"].tolist())[:, :5].mean() for init in INITS}

# %% [markdown]
# The runs are **paired**: for each seed the three inits share the data order and every `W_down`. So we
# compare them seed by seed: the per-seed difference removes what the seed does to both runs alike.

# %%
acc = final.pivot(index="seed", columns="init", values="val_acc")[INITS]  # (seeds, inits)
paired = pd.DataFrame({"zero − random": acc["zero"] - acc["random"], "zero − small": acc["zero"] - acc["small"]})
stats = paired.agg(["mean", "std"]).T
stats["mean / (std/√n)"] = stats["mean"] / (stats["std"] / np.sqrt(len(SEEDS))).replace(0, np.nan)
display(Markdown("**final validation accuracy (mnist5k), per seed**"), acc.style.format("{:.4f}"),
        Markdown("**paired differences (accuracy points as fractions)**"), paired.style.format("{:+.4f}"),
        stats.style.format("{:+.4f}"))

# %% [markdown]
# **Why random init moves the features faster.** A step changes an adapter's output
# `A = W_up · GELU(W_down x)` by, to first order,
# `ΔA ≈ ΔW_up · GELU(W_down x) + W_up · diag(GELU′(W_down x)) · ΔW_down · x`.
# The first term is there with zero init too: `W_up`'s update changes the output from the first step.
# What zero init removes is the **second** term: with `W_up = 0` a change of `W_down` has no effect on the
# output (and `W_down` gets no gradient). With random init both terms act from step 0, so each step moves
# the features further: a larger effective step. The run from (b) measures it: how far the pooled features
# of the probe batch moved during the first 5 steps.

# %%
movement = {init: ((features[(init, 5)] - features[(init, 0)]).norm() / features[(init, 0)].norm()).item()
            for init in INITS}
display(pd.DataFrame({"relative change of pooled features, steps 0→5": movement,
                      "mean loss, first 5 steps": early}).style.format("{:.4f}"))

# %% [markdown]
# ## What the measurements show

# %%
gap_step0 = summary.loc["zero", "mean"] - summary.loc["random", "mean"]
d, sd = stats.loc["zero − random", "mean"], stats.loc["zero − random", "std"]
detected = abs(d) > 2 * sd / np.sqrt(len(SEEDS)) and (np.sign(paired["zero − random"]) == np.sign(d)).all()
verdict = (f"a difference of {100 * d:+.1f} points, the same sign for every seed" if detected else
           f"**no difference detected at this budget** ({len(SEEDS)} seeds, {steps_total} steps): mean paired "
           f"difference {100 * d:+.2f} points, std {100 * sd:.2f}")
faster = "lower" if early["random"] < early["zero"] else "higher"
display(Markdown(f"""
* **(a)** Random init costs the pretraining head **{100 * gap_step0:.1f} points** before any learning; zero init costs
  exactly 0; small init moves logits by at most {small_shift:.1e} and changes {small_changed:.1f} of {len(labels)} predictions.
* **(b)** At step 0 the last block's CKA (all tokens / CLS) is {drift[('random', 0, 'all')][-1]:.3f} / {drift[('random', 0, 'cls')][-1]:.3f}
  with random init and exactly 1 with zero init; after {steps_total} steps {drift[('random', steps_total, 'all')][-1]:.3f} /
  {drift[('random', steps_total, 'cls')][-1]:.3f} vs {drift[('zero', steps_total, 'all')][-1]:.3f} / {drift[('zero', steps_total, 'cls')][-1]:.3f}.
  Both inits move the features (that is adaptation); random init starts moved.
* **(c)** Final accuracy, zero vs random, paired by seed: {verdict}. Over the first 5 steps random init has a {faster}
  mean loss ({early['random']:.3f} vs {early['zero']:.3f}) and its features moved
  {movement['random'] / max(movement['zero'], 1e-12):.1f}× as far as zero init's.
* The cost of random initialisation that this notebook *shows* is the damaged start (a); whether it changes the end
  point needs more seeds or a harder target than this budget gives.
"""))
