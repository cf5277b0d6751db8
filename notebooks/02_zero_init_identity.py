# %% [markdown]
# # 02 · Zero initialisation keeps the network exactly as it was
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/adaptertune-lite/adaptertune_lite/blob/main/notebooks/02_zero_init_identity.ipynb)
#
# AdapterTune initialises each adapter's up-projection to **zero**. This notebook shows what follows, with measurements:
#
# 1. the adapted network's logits are **bitwise identical** to the pretrained network's, for every placement;
# 2. at step 0 the gradient reaching the **down-projection is exactly zero**, and only the up-projection moves;
# 3. after one optimiser step both train;
# 4. "small" initialisation is only *nearly* the identity;
# 5. the adapters' output grows from exactly zero as training proceeds.

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
import pandas as pd
import torch
import torch.nn.functional as F

import adaptertune_lite as at

print({k: at.versions()[k] for k in ("torch", "timm", "adaptertune_lite")}, "|", at.describe_device())
at.plots.use_style()
_ = torch.manual_seed(0)  # reproducible random weights below

# %%
BACKBONE = "kit_vit_tiny"  # offline kit ViT; or e.g. "vit_small_patch16_224" with internet
RANK = 16  # adapter bottleneck width (the paper's default)
backbone = at.load_backbone(BACKBONE, num_classes=10).eval()
data = at.load_dataset("mnist5k", backbone)
x = data.train.transform(data.train.images[:64])  # (64, 3, 32, 32) normalised digits
y = data.train.labels[:64]  # (64,) their labels
with torch.no_grad():
    reference = backbone(x)  # (64, 10) logits of the untouched backbone

# %% [markdown]
# ## 1 · Bitwise identity, for every placement
#
# **Why it must hold:** a zero-initialised adapter computes `0 · GELU(W_down h) + 0`, which is
# exactly `0.0` in floating point, and `h + 0.0 == h` exactly. No rounding happens anywhere, so we
# can demand `torch.equal`, not merely "close".

# %%
rows = []
for placement in at.PLACEMENTS:
    adapted = at.add_adapters(copy.deepcopy(backbone), rank=RANK, placement=placement, init="zero")
    with torch.no_grad():
        logits = adapted(x)
    rows.append({
        "placement": placement,
        "adapters": len(at.adapters_of(adapted)),
        "torch.equal": torch.equal(logits, reference),
        "max |Δ logit|": (logits - reference).abs().max().item(),
    })
identity = pd.DataFrame(rows)
print(identity.to_string(index=False))
n_equal = int(identity["torch.equal"].sum())
print(f"\nbitwise identical: {n_equal} of {len(identity)} placements")
assert n_equal == len(identity) and identity["max |Δ logit|"].max() == 0.0

# %% [markdown]
# ## 2 · The gradient story at step 0
#
# With `W_up = 0`, the gradient with respect to `W_down` must pass *through* `W_up`:
# `∂L/∂W_down = (W_upᵀ ∂L/∂A) ⊙ GELU'(·) · hᵀ = 0`. The up-projection's gradient,
# `∂L/∂W_up = ∂L/∂A · GELU(W_down h)ᵀ`, is not zero. So in the first step only `W_up`, `b_up` (and the head) move.

# %%
model = at.add_adapters(copy.deepcopy(backbone), rank=RANK, init="zero")
at.set_trainable(model, "adapter_tune")  # adapters + head train; backbone frozen
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)  # the paper's lr
model.train()
F.cross_entropy(model(x), y).backward()


def grad_table(model) -> pd.DataFrame:
    """Largest absolute gradient per adapter weight, for every adapter."""
    return pd.DataFrame([
        {"adapter": name, "max|∂L/∂W_down|": a.down.weight.grad.abs().max().item(),
         "max|∂L/∂W_up|": a.up.weight.grad.abs().max().item()}
        for name, a in at.adapters_of(model).items()
    ])


step0 = grad_table(model)
print(step0.to_string(index=False))
assert (step0["max|∂L/∂W_down|"] == 0).all() and (step0["max|∂L/∂W_up|"] > 0).all()
print("\nat step 0 the down-projection gradient is exactly zero in every adapter; the up-projection's is not")

# %% [markdown]
# ## 3 · After one optimiser step, both train
#
# The step moves `W_up` away from zero, which opens the path for the gradient to reach `W_down`.

# %%
optimizer.step()
optimizer.zero_grad()
F.cross_entropy(model(x), y).backward()
step1 = grad_table(model)
print(step1.to_string(index=False))
assert (step1["max|∂L/∂W_down|"] > 0).all() and (step1["max|∂L/∂W_up|"] > 0).all()

# %% [markdown]
# ## 4 · "Small" initialisation is only nearly the identity
#
# Some adapter papers draw `W_up ~ N(0, σ²)` with a tiny `σ` instead of zero. The output then
# changes a little, and the change grows with `σ`:

# %%
rows = []
for init, note in [("zero", "W_up = 0"), ("small", "W_up ~ N(0, 1e-4²)"), ("random", "W_up Xavier-uniform")]:
    torch.manual_seed(0)  # same W_down draw for each init
    adapted = at.add_adapters(copy.deepcopy(backbone), rank=RANK, init=init)
    with torch.no_grad():
        delta = (adapted(x) - reference).abs()
    rows.append({"init": init, "up-projection": note, "max |Δ logit|": delta.max().item(),
                 "mean |Δ logit|": delta.mean().item(), "bitwise identical": torch.equal(adapted(x), reference)})
inits = pd.DataFrame(rows)
print(inits.to_string(index=False))
small_dev = inits.set_index("init").loc["small", "max |Δ logit|"]
assert 0 < small_dev < inits.set_index("init").loc["random", "max |Δ logit|"]
print(f"\nsmall init: max deviation {small_dev:.2e}, near the identity but not equal to it")

# %% [markdown]
# ## 5 · Adapter outputs grow from exactly zero
#
# We train AdapterTune for a few dozen steps on digits and record, after every step, the average
# norm of each adapter's output `‖A(h)‖` on a fixed batch. At step 0 every curve starts at exactly 0.

# %%
STEPS = at.by_mode(40, 200)  # optimiser steps to follow
BATCH = 64  # images per step
model = at.add_adapters(copy.deepcopy(backbone), rank=RANK, init="zero")
at.set_trainable(model, "adapter_tune")
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.05)
norms = {name: [] for name in at.adapters_of(model)}
recorded = {}
hooks = [a.register_forward_hook(lambda m, i, out, name=name: recorded.__setitem__(name, out.norm(dim=-1).mean().item()))
         for name, a in at.adapters_of(model).items()]
g = torch.Generator().manual_seed(0)
for step in range(STEPS + 1):
    with torch.no_grad():  # measure on the fixed batch x
        model.eval()
        model(x)
        model.train()
    for name in norms:
        norms[name].append(recorded[name])
    if step == STEPS:
        break
    idx = torch.randint(0, len(data.train), (BATCH,), generator=g)
    loss = F.cross_entropy(model(data.train.transform(data.train.images[idx])), data.train.labels[idx])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
for h in hooks:
    h.remove()

fig, ax = plt.subplots()
for name, values in norms.items():
    ax.plot(values, label=name.replace(".adapter", ""))
ax.set_xlabel("optimiser step")
ax.set_ylabel("mean ‖A(h)‖ per token (feature units)")
ax.set_title("Adapter outputs start at exactly zero and grow")
ax.legend(title="block", fontsize="small", ncol=2)
plt.show()
assert all(v[0] == 0.0 for v in norms.values()) and all(v[-1] > 0 for v in norms.values())
print("adapter output norms at step 0:", {k.split(".")[1]: v[0] for k, v in norms.items()})

# %% [markdown]
# **What we measured**
#
# * Zero-initialised adapters leave the logits bitwise identical for all five placements.
# * At step 0 the down-projection's gradient is exactly zero and the up-projection's is not; one step later both train.
# * "Small" initialisation perturbs the output slightly; random initialisation much more (notebook 03 follows that damage).
# * Training starts from the pretrained function and grows the adapters' contribution from zero.
