# %% [markdown]
# # 01 · Build an adapter
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/adaptertune-lite/adaptertune_lite/blob/main/notebooks/01_build_an_adapter.ipynb)
#
# In this notebook you will
#
# 1. take a pretrained Vision Transformer apart and follow a batch through it, shape by shape;
# 2. write an adapter from scratch (down-projection, GELU, up-projection, residual) and check it against the kit's;
# 3. count its parameters, `2·d·r + r + d`, for real ViT widths;
# 4. insert one adapter into one block by hand, then let `add_adapters` do it for every placement.

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
import pandas as pd
import timm
import torch
from IPython.display import Markdown, display
from torch import nn

import adaptertune_lite as at

print({k: at.versions()[k] for k in ("torch", "timm", "adaptertune_lite")}, "|", at.describe_device())
at.course.plots.use_style()
_ = torch.manual_seed(0)  # reproducible random weights below

# %% [markdown]
# ## 1 · The ViT's anatomy
#
# **Why:** an adapter is inserted *into* the network, so we need to know where the tensors flow.
# We use the kit backbone (offline). With a GPU and internet, set `BACKBONE = "vit_small_patch16_224"`:
# every cell below works the same for timm's `VisionTransformer` family (ViT, DeiT, their augreg variants),
# whose optional parts (`norm_pre`, `patch_drop`, the layer scales `ls1`/`ls2`, `drop_path`) the hand-written
# passes below include. Other timm families (Swin, EVA with rotary embeddings, ...) build their blocks
# differently; `at.add_adapters` expects a model with `.blocks` whose blocks have `.attn` and `.mlp`.

# %%
BACKBONE = "kit_vit_tiny"  # the kit's offline ViT; or any timm ViT name
model = at.load_backbone(BACKBONE, num_classes=10).eval()  # a fresh 10-class head for digits
data = at.load_dataset("mnist5k", model)  # real MNIST digits, resized for the backbone on the fly
x = data.train.transform(data.train.images[:8])  # (8, 3, 32, 32): a batch of 8 digits, normalised
print("input batch:", x.shape)

# %% [markdown]
# A ViT cuts the image into patches, embeds each patch as a token, prepends a learnable **[CLS]**
# token, adds position embeddings, and then runs a stack of identical **blocks**. Let us do it by
# hand, printing every shape.

# %%
with torch.no_grad():
    patches = model.patch_embed(x)  # conv with stride = patch size: (B, N, D), N = (32/8)^2 = 16 patches
    print("patch tokens:", patches.shape)
    tokens = model._pos_embed(patches)  # prepend [CLS], add position embeddings: (B, 1 + N, D)
    tokens = model.norm_pre(model.patch_drop(tokens))  # optional patch dropout and pre-norm (Identity here)
    print("tokens + [CLS]:", tokens.shape)
    h = tokens
    for block in model.blocks:  # each block: (B, 17, D) -> (B, 17, D), the *residual stream*
        h = block(h)
    print("after", len(model.blocks), "blocks:", h.shape)
    pooled = model.forward_head(model.norm(h), pre_logits=True)  # the [CLS] token after the final norm: (B, D)
    logits = model.head(pooled)  # (B, 10)
    print("pooled:", pooled.shape, "-> logits:", logits.shape)
    at.course.claims.claim(torch.equal(logits, model(x)), "our hand-made forward pass computes exactly the model's logits")

# %% [markdown]
# Inside a block the stream `x` is only ever *added to*:
#
# `x = x + Attn(LN(x))`, then `x = x + MLP(LN(x))`.
#
# (timm wraps each sub-layer output in an optional layer scale `ls1`/`ls2` and stochastic depth
# `drop_path1`/`drop_path2`; both are `Identity` here, and drop path is `Identity` in eval mode anyway.)
# That additive residual stream is exactly where an adapter can add its own small update. Check the two lines
# against timm's block, bit for bit:

# %%
block = model.blocks[0]
with torch.no_grad():
    x0 = tokens
    x1 = x0 + block.drop_path1(block.ls1(block.attn(block.norm1(x0))))  # attention sub-layer, residual add
    x2 = x1 + block.drop_path2(block.ls2(block.mlp(block.norm2(x1))))  # MLP sub-layer, residual add
    print("block(x) == hand-written block:", torch.equal(block(x0), x2))

# %% [markdown]
# ## 2 · An adapter from scratch
#
# An adapter is a **bottleneck**: project the `d`-dimensional token down to `r ≪ d` dimensions,
# apply a non-linearity, and project back up. It is used **residually**: `h' = h + A(h)`.
#
# Step by step, first the down-projection, `W_down ∈ R^{r×d}`:

# %%
d = model.embed_dim  # width of the residual stream (192 for the kit backbone)
r = 16  # adapter rank: the bottleneck width
down = nn.Linear(d, r)  # W_down h + b_down: (B, T, d) -> (B, T, r)
nn.init.xavier_uniform_(down.weight)  # AdapterTune: Xavier-uniform W_down ...
nn.init.zeros_(down.bias)  # ... and zero b_down
print("down:", down.weight.shape)

# %% [markdown]
# Then the non-linearity (GELU, as in the ViT's own MLP) and the up-projection, `W_up ∈ R^{d×r}`.
# **The AdapterTune trick: `W_up` and `b_up` start at exactly zero.**

# %%
act = nn.GELU()
up = nn.Linear(r, d)  # W_up z + b_up: (B, T, r) -> (B, T, d)
nn.init.zeros_(up.weight)  # zero init: the adapter's output is exactly 0 ...
nn.init.zeros_(up.bias)  # ... for every input
print("up:", up.weight.shape)


# %% [markdown]
# Put together as a module, with the same initialisation. Its `forward` returns the *update* `A(h)`;
# the caller adds it to the stream.

# %%
class MyAdapter(nn.Module):
    """Residual bottleneck adapter, zero-initialised.

    Input ``h``: (B, T, d) tokens. Output: (B, T, d), the update ``A(h) = W_up GELU(W_down h + b_down) + b_up``.
    """

    def __init__(self, d: int, r: int):
        super().__init__()
        self.down, self.act, self.up = nn.Linear(d, r), nn.GELU(), nn.Linear(r, d)
        nn.init.xavier_uniform_(self.down.weight)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(h)))


mine = MyAdapter(d, r)
kit = at.Adapter(d, r, init="zero")
kit.load_state_dict(mine.state_dict())  # same random W_down in both (same names: down, up)
h = torch.randn(8, 17, d)
same = torch.equal(mine(h), kit(h))
print("my adapter == at.Adapter:", same)
print("output of a zero-initialised adapter is exactly zero:", torch.equal(kit(h), torch.zeros_like(h)))

# %% [markdown]
# ## 3 · How many parameters?
#
# `W_down` has `r·d`, `b_down` has `r`, `W_up` has `d·r`, `b_up` has `d`: **`2·d·r + r + d`** per adapter.
# One adapter after every block of the paper's three backbones (DeiT-Tiny, ViT-Small, ViT-Base: widths
# 192/384/768, 12 blocks), as a fraction of full fine-tuning's trainable parameters. The backbones are
# built on PyTorch's `meta` device: shapes only, no memory, no download.
#
# **A closed form.** A block holds about `12·d²` weights (`3d²` for q, k, v, `d²` for the attention
# output, `8d²` for the MLP with its 4× hidden width), and an adapter about `2·d·r`. So adapters add
# about **`2dr / 12d² = r / (6d)`** of the blocks' weights: the fraction falls with width, which is why
# a rank-16 adapter is a larger share of a tiny ViT than of a large one.

# %%
PAPER_BACKBONES = {"deit_tiny_patch16_224": 192, "vit_small_patch16_224": 384, "vit_base_patch16_224": 768}
SHORT = {"deit_tiny_patch16_224": "DeiT-Ti", "vit_small_patch16_224": "ViT-S", "vit_base_patch16_224": "ViT-B"}
RANKS = [1, 2, 4, 8, 16, 32, 64]


def backbone_params(name: str, num_classes: int = 0) -> int:
    """Parameters of a timm model with a ``num_classes`` head (0: no head), counted on the meta device."""
    with torch.device("meta"):
        return sum(p.numel() for p in timm.create_model(name, pretrained=False, num_classes=num_classes).parameters())


rows = []
for name, width in PAPER_BACKBONES.items():
    body = backbone_params(name)  # everything but the head
    for rank in RANKS:
        n = 12 * at.num_adapter_params(width, rank)  # one adapter after each of the 12 blocks
        rows.append({"backbone": name, "d": width, "r": rank, "adapter params": n,
                     "% of backbone": 100 * n / body, "r/(6d) in %": 100 * rank / (6 * width)})
table = pd.DataFrame(rows)
at16 = table[table.r == 16].set_index("backbone")
display(at16.style.format({"adapter params": "{:,}", "% of backbone": "{:.3f}", "r/(6d) in %": "{:.3f}"}))
print(f"ViT-B, r=16, 12 blocks: {12 * at.num_adapter_params(768, 16):,} adapter parameters")

# %%
fig, ax = plt.subplots(figsize=(6.5, 4))
for i, (name, width) in enumerate(PAPER_BACKBONES.items()):
    t = table[table.backbone == name]
    ax.plot(t["r"], t["% of backbone"], "o", color=f"C{i}", label=f"{SHORT[name]} (d={width}), counted")
    ax.plot(t["r"], t["r/(6d) in %"], "--", color=f"C{i}", lw=1, label=f"r/(6d), d={width}")
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xlabel("adapter rank r")
ax.set_ylabel("adapter parameters (% of the backbone's)")
ax.set_title("Adapters after all 12 blocks: measured vs r/(6d)")
ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes
plt.show()
ratio = table["% of backbone"] / table["r/(6d) in %"]
print(f"counted / closed form: {ratio[table.r >= 8].min():.3f} … {ratio[table.r >= 8].max():.3f} for r >= 8, "
      f"up to {ratio.max():.3f} at r = 1, where an adapter's biases (r + d) add 1/(2r) to its 2dr weights")

# %% [markdown]
# **The paper's 0.92 %** (paper, abstract: "about 0.92 % of full fine-tuning's trainable parameters at r = 16")
# counts what AdapterTune trains, **adapters and head**, against what full fine-tuning trains, **backbone and
# head**, averaged over its benchmark. The head depends on the dataset, so we compute that average the same
# way over the paper's core-5 datasets and its three backbones:

# %%
CORE5_CLASSES = {"CIFAR-10": 10, "CIFAR-100": 100, "SVHN": 10, "Oxford Pets": 37, "Food-101": 101}
rows = []
for name, width in PAPER_BACKBONES.items():
    body, adapters = backbone_params(name), 12 * at.num_adapter_params(width, 16)
    for dataset, classes in CORE5_CLASSES.items():
        head = (width + 1) * classes  # a linear head: weight and bias
        rows.append({"backbone": name, "dataset": dataset, "% without head": 100 * adapters / (body + head),
                     "% with head": 100 * (adapters + head) / (body + head)})
fractions = pd.DataFrame(rows)
by_backbone = fractions.groupby("backbone", sort=False)[["% without head", "% with head"]].mean()
display(by_backbone.style.format("{:.3f}"))
mean_with_head = fractions["% with head"].mean()
matches = abs(mean_with_head - 0.92) < 0.005
display(Markdown(
    f"Averaged over 3 backbones × 5 datasets at r = 16: **{mean_with_head:.2f} %** with the head, "
    f"{fractions['% without head'].mean():.2f} % without. Paper: 0.92 % (abstract). " +
    ("So the paper's figure is this average, heads included: per backbone it ranges from "
     f"{by_backbone['% with head'].min():.2f} % ({SHORT[by_backbone['% with head'].idxmin()]}) to "
     f"{by_backbone['% with head'].max():.2f} % ({SHORT[by_backbone['% with head'].idxmax()]})."
     if matches else "The order of magnitude agrees; the exact figure depends on which heads and backbones enter "
     "the average, which the abstract does not spell out.")))

# %% [markdown]
# ## 4 · Insert one adapter by hand
#
# The cleanest way to add an adapter **without renaming any pretrained weight** is a *forward
# hook*: a function PyTorch calls after a module's `forward`, which may replace its output.
# We attach our adapter to block 3 and add its output to the block's output (the residual stream).

# %%
manual = copy.deepcopy(model)
target = manual.blocks[3]
target.my_adapter = MyAdapter(d, r)  # registered as a child: its weights appear as blocks.3.my_adapter.*


def add_adapter_output(module, inputs, output):  # output: (B, 17, d), the block's residual stream
    return output + module.my_adapter(output)


target.register_forward_hook(add_adapter_output)
with torch.no_grad():
    print("unchanged at zero init:", torch.equal(manual(x), model(x)))
    nn.init.normal_(target.my_adapter.up.weight, std=0.1)  # now give W_up some weight ...
    print("changed once W_up != 0:", not torch.equal(manual(x), model(x)))
print("new parameter names:", [k for k in manual.state_dict() if "my_adapter" in k])

# %% [markdown]
# `at.add_adapters` does the same for every block, with five placements:
#
# * `post_block` (AdapterTune): on the residual stream after the block;
# * `post_attn` / `post_mlp`: on the attention / MLP output before its residual add;
# * `houlsby`: both (Houlsby et al., 2019);
# * `parallel`: beside the MLP, reading the MLP's input (AdaptFormer).

# %%
rows = []
for placement in at.PLACEMENTS:
    adapted = at.add_adapters(copy.deepcopy(model), rank=16, placement=placement)
    names = list(at.adapters_of(adapted))
    at.set_trainable(adapted, "adapter_tune")  # adapters + head train, backbone frozen
    counts = at.count_parameters(adapted)
    rows.append({"placement": placement, "adapters": len(names), "first": names[0],
                 "adapter params": counts.adapter, "% of full FT (with head)": round(100 * counts.fraction_of_full, 2)})
display(pd.DataFrame(rows).style.hide(axis="index").format({"adapter params": "{:,}"}))

# %% [markdown]
# **Takeaways**
#
# * A ViT is a stack of blocks that *add* to a residual stream of `(B, 1 + N, d)` tokens.
# * An adapter is `up(GELU(down(h)))` added to that stream: `2·d·r + r + d` parameters.
# * With `W_up = 0` its output is exactly zero. Notebook 02 shows what that buys.
