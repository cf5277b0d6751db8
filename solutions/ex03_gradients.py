# %% [markdown]
# # Exercise 03 · Gradients at step 0 (5 points)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/adaptertune-lite/adaptertune_lite/blob/main/solutions/ex03_gradients.ipynb)
#
# Goes with notebooks 02 and 03. Two graded tasks:
#
# | task | what you write | points |
# |---|---|---|
# | `ex03.backprop` | the four gradients of an adapter, by hand | 3 |
# | `ex03.init` | AdapterTune's initialisation | 2 |

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
import math

import torch
from torch import nn

import adaptertune_lite as at
from adaptertune_lite.grading import check, demo

print(", ".join(f"{k} {at.versions()[k]}" for k in ("torch", "timm", "adaptertune_lite")), "|", at.describe_device())


# %% [markdown]
# ## Task 1 · backpropagate through an adapter (3 points)
#
# With `z = h W_downᵀ + b_down` and `A = GELU(z) W_upᵀ + b_up` for a batch `h` of shape `(N, d)`,
# and `g = ∂L/∂A` of shape `(N, d)` coming from above, write the four gradients without autograd.
# GELU's derivative is `Φ(z) + z·φ(z)` (standard normal CDF and density).
#
# Then read your formula for `∂L/∂W_down` with `W_up = 0`: that is the step-0 zero of notebook 02.

# %%
def adapter_grads(W_down, b_down, W_up, b_up, h, g) -> dict:
    """Gradients of ``L`` w.r.t. the adapter's parameters, given ``g = dL/dA``.

    Shapes: ``W_down (r, d)``, ``b_down (r,)``, ``W_up (d, r)``, ``b_up (d,)``, ``h (N, d)``, ``g (N, d)``.
    Returns ``{"W_down": (r, d), "b_down": (r,), "W_up": (d, r), "b_up": (d,)}``.
    """
    z = h @ W_down.T + b_down  # (N, r)
    phi = torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    Phi = 0.5 * (1 + torch.erf(z / math.sqrt(2)))
    a = z * Phi  # GELU(z)
    dz = (g @ W_up) * (Phi + z * phi)  # (N, r)
    return {"W_up": g.T @ a, "b_up": g.sum(0), "W_down": dz.T @ h, "b_down": dz.sum(0)}


# %%
check("ex03.backprop", adapter_grads)


# %% [markdown]
# ## Task 2 · AdapterTune's initialisation (2 points)
#
# Initialise a kit `Adapter` in place: `W_down` Xavier-uniform, everything else zero.
#
# Why not zero `W_down` too? Then `GELU(W_down h + 0) = GELU(0) = 0`, so `∂L/∂W_up = gᵀ · 0 = 0`
# as well as `∂L/∂W_down = 0` (through `W_up = 0`): nothing but `b_up` ever moves, and the adapter
# collapses to a bias. The cell after the check shows it.

# %%
def adaptertune_init_(adapter: at.Adapter) -> None:
    """Re-initialise ``adapter`` (with ``.down`` and ``.up`` linears) as AdapterTune does, in place."""
    nn.init.xavier_uniform_(adapter.down.weight)
    nn.init.zeros_(adapter.down.bias)
    nn.init.zeros_(adapter.up.weight)
    nn.init.zeros_(adapter.up.bias)


# %%
check("ex03.init", adaptertune_init_)

# %% [markdown]
# ## The counter-experiment: both projections zero
#
# Your gradients, first with your initialisation, then with `W_down` zeroed as well.

# %%
with demo("adaptertune_init_", "adapter_grads"):
    adapter = at.Adapter(32, 4)  # d=32, r=4
    adaptertune_init_(adapter)
    h, g = torch.randn(16, 32), torch.randn(16, 32)  # a batch and an upstream gradient
    for name, W_down in (("Xavier W_down", adapter.down.weight), ("zero W_down", torch.zeros_like(adapter.down.weight))):
        grads = adapter_grads(W_down.detach(), adapter.down.bias.detach(), adapter.up.weight.detach(), adapter.up.bias.detach(), h, g)
        print(f"{name:>13}: |dL/dW_up| = {grads['W_up'].norm():.3g}, |dL/dW_down| = {grads['W_down'].norm():.3g}")
