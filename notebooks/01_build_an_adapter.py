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
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("adaptertune_lite") is None:  # Colab or a bare Python: install the kit
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "git+https://github.com/adaptertune-lite/adaptertune_lite"], check=True)

# %%
import copy

import pandas as pd
import timm
import torch
from torch import nn

import adaptertune_lite as at

print({k: at.versions()[k] for k in ("torch", "timm", "adaptertune_lite")}, "|", at.describe_device())
_ = torch.manual_seed(0)  # reproducible random weights below

# %% [markdown]
# ## 1 · The ViT's anatomy
#
# **Why:** an adapter is inserted *into* the network, so we need to know where the tensors flow.
# We use the kit backbone (offline). With a GPU and internet, set `BACKBONE = "vit_small_patch16_224"`;
# every cell below works the same.

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
    print("tokens + [CLS]:", tokens.shape)
    h = tokens
    for block in model.blocks:  # each block: (B, 17, D) -> (B, 17, D), the *residual stream*
        h = block(h)
    print("after", len(model.blocks), "blocks:", h.shape)
    pooled = model.forward_head(model.norm(h), pre_logits=True)  # the [CLS] token after the final norm: (B, D)
    logits = model.head(pooled)  # (B, 10)
    print("pooled:", pooled.shape, "-> logits:", logits.shape)
    assert torch.equal(logits, model(x))  # our hand-made forward pass is the model's

# %% [markdown]
# Inside a block the stream `x` is only ever *added to*:
#
# `x = x + Attn(LN(x))`, then `x = x + MLP(LN(x))`.
#
# That additive residual stream is exactly where an adapter can add its own small update. Check the two lines
# against timm's block:

# %%
block = model.blocks[0]
with torch.no_grad():
    x0 = tokens
    x1 = x0 + block.attn(block.norm1(x0))  # attention sub-layer, residual add
    x2 = x1 + block.mlp(block.norm2(x1))  # MLP sub-layer, residual add
    print("block(x) == hand-written block:", torch.allclose(block(x0), x2, atol=1e-6))
    assert torch.allclose(block(x0), x2, atol=1e-6)

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
assert same
print("output of a zero-initialised adapter is exactly zero:", torch.equal(kit(h), torch.zeros_like(h)))


# %% [markdown]
# ## 3 · How many parameters?
#
# `W_down` has `r·d`, `b_down` has `r`, `W_up` has `d·r`, `b_up` has `d`: **`2·d·r + r + d`** per adapter.
# One adapter after every block of ViT-Tiny/Small/Base (widths 192/384/768, 12 blocks), as a
# fraction of full fine-tuning (all backbone weights plus a 100-class head). The backbones are built
# on PyTorch's `meta` device: shapes only, no memory, no download.

# %%
def backbone_params(name: str, num_classes: int = 100) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in timm.create_model(name, pretrained=False, num_classes=num_classes).parameters())


rows = []
for name, width in [("vit_tiny_patch16_224", 192), ("vit_small_patch16_224", 384), ("vit_base_patch16_224", 768)]:
    full = backbone_params(name)
    for rank in [1, 2, 4, 8, 16, 32, 64]:
        n = 12 * at.num_adapter_params(width, rank)  # one adapter after each of the 12 blocks
        rows.append({"backbone": name, "d": width, "r": rank, "adapter params": n, "% of full FT": 100 * n / full})
table = pd.DataFrame(rows)
order = ["vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224"]
print("adapter parameters (12 blocks):")
print(table.pivot(index="r", columns="backbone", values="adapter params")[order].to_string())
print("\n% of full fine-tuning's parameters:")
print(table.pivot(index="r", columns="backbone", values="% of full FT")[order].round(3).to_string())
print(f"\nViT-B, r=16, 12 blocks: {12 * at.num_adapter_params(768, 16):,} adapter parameters")

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
print(pd.DataFrame(rows).to_string(index=False))

# %% [markdown]
# **Takeaways**
#
# * A ViT is a stack of blocks that *add* to a residual stream of `(B, 1 + N, d)` tokens.
# * An adapter is `up(GELU(down(h)))` added to that stream: `2·d·r + r + d` parameters.
# * With `W_up = 0` its output is exactly zero. Notebook 02 shows what that buys.
