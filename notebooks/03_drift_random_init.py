# %% [markdown]
# # 03 · Drift: what random initialisation does to a pretrained network
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/adaptertune-lite/adaptertune_lite/blob/main/notebooks/03_drift_random_init.ipynb)
#
# Notebook 02 showed that zero-initialised adapters leave the network untouched. Here we compare three
# initialisations of the up-projection, with the same seeds, and measure three things:
#
# * **(a)** the pretrained function damaged *before any learning*: the kit backbone's own pretraining head,
#   on images of its pretraining classes;
# * **(b)** representation drift over the first training steps: linear CKA between adapted and pretrained features, per block;
# * **(c)** early loss curves and final accuracy over several seeds.

# %%
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("adaptertune_lite") is None:  # Colab or a bare Python: install the kit
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "git+https://github.com/adaptertune-lite/adaptertune_lite"], check=True)

# %%
import copy

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
import torch.nn.functional as F

import adaptertune_lite as at
from adaptertune_lite.drift import block_cka
from adaptertune_lite.recipes import kit_recipe

print({k: at.versions()[k] for k in ("torch", "timm", "adaptertune_lite")}, "|", at.describe_device())
at.plots.use_style()

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


@torch.no_grad()
def head_accuracy(model) -> float:
    model.eval()
    return (model(x_pre).argmax(-1) == labels).float().mean().item()


baseline = head_accuracy(pretrained)
rows = []
for init in INITS:
    for seed in SEEDS:
        torch.manual_seed(seed)
        adapted = at.add_adapters(copy.deepcopy(pretrained), rank=RANK, init=init)
        rows.append({"init": init, "seed": seed, "accuracy": head_accuracy(adapted)})
damage = pd.DataFrame(rows)
summary = damage.groupby("init", sort=False)["accuracy"].agg(["mean", "std"])
print(f"pretraining-head accuracy at step 0 (no adapters: {baseline:.3f})")
print(summary.round(4).to_string())

# %%
fig, ax = plt.subplots()
sns.barplot(damage, x="init", y="accuracy", errorbar="sd", ax=ax)
ax.axhline(baseline, ls="--", color="k", lw=1, label="pretrained, no adapters")
ax.set_xlabel("initialisation of the up-projection")
ax.set_ylabel("pretraining-head accuracy (fraction)")
ax.set_title("Before any training step")
ax.legend()
plt.show()
assert (damage.query("init == 'zero'")["accuracy"] == baseline).all()  # exactly the pretrained function
assert summary.loc["random", "mean"] < baseline  # random init damages it before any learning

# %% [markdown]
# ## (b) Representation drift during the first steps
#
# **Linear CKA** (centred kernel alignment) compares two sets of features of the same inputs: 1.0 means the
# same representation up to rotation and scale. We train AdapterTune on digits for a few steps with each
# initialisation and, along the way, compare every block's output with the pretrained backbone's.

# %%
STEPS = at.by_mode(20, 200)  # optimiser steps to follow
MEASURE_AT = sorted({0, 1, 2, 5, 10, STEPS // 2, STEPS})  # steps at which drift is measured
BATCH = 64  # images per step
backbone = at.load_backbone(BACKBONE, num_classes=10).eval()  # fresh 10-class head for digits
digits = at.load_dataset("mnist5k", backbone, n_train=at.by_mode(400, None))  # training images
probe_x = digits.val.transform(digits.val.images[:128])  # (128, 3, 32, 32): fixed probe batch
lr = kit_recipe("adapter_tune", "mnist5k")["lr"]  # the kit's AdapterTune learning rate

drift = {}
features = {}  # (init, step) -> pooled features of the probe batch, (128, embed_dim)
for init in INITS:
    torch.manual_seed(0)
    model = at.add_adapters(copy.deepcopy(backbone), rank=RANK, init=init)
    at.set_trainable(model, "adapter_tune")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.05)
    g = torch.Generator().manual_seed(0)  # same batches for every init
    for step in range(STEPS + 1):
        if step in MEASURE_AT:
            drift[(init, step)] = block_cka(model, backbone, probe_x)
            with torch.no_grad():
                features[(init, step)] = at.extract_features(model.eval(), probe_x)
        if step == STEPS:
            break
        idx = torch.randint(0, len(digits.train), (BATCH,), generator=g)
        model.train()
        loss = F.cross_entropy(model(digits.train.transform(digits.train.images[idx])), digits.train.labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
cka = pd.DataFrame([{"init": i, "step": s, "block": b, "cka": v}
                    for (i, s), values in drift.items() for b, v in enumerate(values)])
print("linear CKA to the pretrained features, last block:")
print(cka[cka.block == cka.block.max()].pivot(index="step", columns="init", values="cka").round(4).to_string())

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
for ax, init in zip(axes, INITS):
    grid = cka[cka.init == init].pivot(index="block", columns="step", values="cka")
    sns.heatmap(grid, vmin=0, vmax=1, cmap="viridis", ax=ax, cbar=init == INITS[-1],
                cbar_kws={"label": "linear CKA (1 = unchanged)"})
    ax.set_title(f"init = {init}")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("block (output of)")
fig.suptitle("Drift of every block's features from the pretrained backbone")
fig.tight_layout()
plt.show()
first = cka[cka.step == 0].groupby("init")["cka"].min()
assert first["zero"] == 1.0 or abs(first["zero"] - 1.0) < 1e-9  # identical features at step 0
assert first["random"] < first["zero"]

# %% [markdown]
# ## (c) Early loss and final accuracy, over seeds
#
# Does the damage matter for the task? We train each initialisation with the kit's AdapterTune recipe,
# for several seeds, and compare the loss over the first steps and the final validation accuracy.

# %%
recipe_at = {**kit_recipe("adapter_tune", "mnist5k"), "epochs": at.by_mode(2, 15)}  # lr, weight decay, batch size, epochs
results = []
for init in INITS:
    for seed in SEEDS:
        torch.manual_seed(seed)
        model = at.add_adapters(copy.deepcopy(backbone), rank=RANK, init=init)
        r = at.fit(model, digits.train, digits.val, method="adapter_tune", seed=seed, progress=False, **recipe_at)
        results.append({"init": init, "seed": seed, "val_acc": r.val_acc, "loss": r.history["loss"]})
final = pd.DataFrame(results)
table = final.groupby("init", sort=False)["val_acc"].agg(["mean", "std"])
print("final validation accuracy (mnist5k):")
print(table.round(4).to_string())

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
print("mean loss over the first 5 steps:", {k: round(v, 3) for k, v in early.items()})


# %% [markdown]
# **Two effects pull the early loss in opposite directions.** Random init starts from damaged features (part (a)),
# which costs loss. But it also makes every step move the features more: the change a step makes to an adapter's
# output `W_up · GELU(W_down · x)` is proportional to the size of the *other* matrix (a step on `W_down` moves it by
# about `W_up · ΔW_down`). With zero init `W_up` starts at 0, so the adapters' effect grows from nothing; with random
# init it is large from step 0: a larger effective learning rate. Which effect wins in the first steps depends on the
# backbone and the learning rate, so we measure the second one on the run from (b): how far the pooled features of
# the probe batch moved during the first 5 steps. The conclusion below says which way the loss went.

# %%
def moved(init: str, step: int = 5) -> float:
    """Relative change of the pooled features between step 0 and `step` of the run in (b)."""
    a, b = features[(init, 0)], features[(init, step)]  # (128, embed_dim) each
    return ((b - a).norm() / a.norm()).item()


movement = {init: moved(init) for init in INITS}
print("relative change of the pooled features over the first 5 steps:", {k: round(v, 4) for k, v in movement.items()})

# %% [markdown]
# ## What the measurements show

# %%
gap_step0 = summary.loc["zero", "mean"] - summary.loc["random", "mean"]
gap_final = table.loc["zero", "mean"] - table.loc["random", "mean"]
noise = max(table["std"].max(), 1e-9)
print(f"(a) random init costs the pretraining head {100 * gap_step0:.1f} points before any learning; zero init costs 0.")
print(f"(b) at step 0 the last block's CKA is {drift[('random', 0)][-1]:.3f} with random init and "
      f"{drift[('zero', 0)][-1]:.3f} with zero init; after {STEPS} steps: "
      f"{drift[('random', STEPS)][-1]:.3f} vs {drift[('zero', STEPS)][-1]:.3f}.")
print(f"(c) final accuracy: zero {table.loc['zero', 'mean']:.3f} vs random {table.loc['random', 'mean']:.3f} "
      f"(difference {100 * gap_final:+.1f} points; largest seed std {100 * noise:.1f} points).")
faster = "lower" if early["random"] < early["zero"] else "higher"
print(f"    Over the first 5 steps random init has a {faster} mean loss ({early['random']:.3f} vs {early['zero']:.3f}); "
      f"its features moved {movement['random'] / max(movement['zero'], 1e-12):.1f}x as far as zero init's "
      f"over those steps ({movement['random']:.4f} vs {movement['zero']:.4f}).")
if abs(gap_final) <= 2 * noise:
    print("    The final difference is within about two seed standard deviations: on this task, training largely "
          "recovers from the damage. The cost of random init is the damaged start, not necessarily the end point.")
else:
    print("    The final difference is larger than two seed standard deviations.")
