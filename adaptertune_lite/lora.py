"""LoRA from scratch: a trained low-rank update inside a frozen linear layer, and merging it away.

LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"; paper) keeps a linear layer's
weight ``W`` (out × in) frozen and adds a trained update of rank ``r``::

    y = W x + b + s · B A x          A: (r, in), B: (out, r), s: a fixed scale

``B`` starts at zero, so the wrapped layer computes exactly what it did before the first optimiser step,
like AdapterTune's zero ``W_up``. Unlike an adapter, the update is *linear* in ``x`` and sits inside a
linear layer, so after training it can be folded into the weight, ``W' = W + s · B A`` (:func:`merge_lora`),
and the merged model is a plain timm model that runs exactly as fast as the original.

The scale ``s`` follows one of three conventions (``scaling``):

* ``"alpha/r"``       – ``s = α / r`` (the LoRA paper; peft's default);
* ``"alpha/sqrt(r)"`` – ``s = α / √r`` (rsLoRA, Kalajdzievski 2023; peft's ``use_rslora``);
* ``"fixed"``         – ``s = α`` whatever the rank (AdapterTune's adapters use a fixed ``s = 1``).

With Adam, every entry of ``B`` moves by about the learning rate per step at first, whatever its gradient,
so the size of the first updates to ``B A x`` grows with ``r`` unless ``s`` shrinks with it: the convention
decides how the effective step size changes along a rank sweep (notebook 08 shows it).

:func:`add_lora` wraps the chosen linears of every block in :class:`LoRALinear` (``print(model)`` shows each
one), ``params.set_trainable(model, "lora")`` trains ``A``, ``B`` and the head.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

SCALINGS = ("alpha/r", "alpha/sqrt(r)", "fixed")
LORA_TARGETS = ("qkv", "proj", "fc1", "fc2")  # the attention and MLP linears of a timm ViT block


def lora_scale(rank: int, alpha: float | None = None, scaling: str = "alpha/r") -> float:
    """The scale ``s`` of the update ``s · B A`` under ``scaling``. ``alpha=None`` makes ``s = 1`` at this rank."""
    if scaling not in SCALINGS:
        raise ValueError(f"Unknown LoRA scaling {scaling!r}: choose one of {', '.join(SCALINGS)}.")
    if not (isinstance(rank, int) and rank >= 1):
        raise ValueError(f"LoRA rank must be an int >= 1, not {rank!r}.")
    if alpha is None:
        return 1.0
    return {"alpha/r": alpha / rank, "alpha/sqrt(r)": alpha / math.sqrt(rank), "fixed": float(alpha)}[scaling]


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trained low-rank update: ``base(x) + scale · (x Aᵀ) Bᵀ``.

    Args:
        base: the linear layer to adapt (kept as ``self.base``, its weights untouched).
        rank: ``r``; the update has ``r · (in + out)`` parameters.
        alpha, scaling: the scale, see :func:`lora_scale`.

    ``A`` is drawn like an ``nn.Linear`` weight (Kaiming-uniform, as in the LoRA reference code and peft);
    ``B`` is zero. Shapes: ``x`` is ``(..., in)``, the output ``(..., out)``.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float | None = None, scaling: str = "alpha/r"):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, not {type(base).__name__}.")
        self.base, self.rank, self.alpha, self.scaling = base, rank, alpha, scaling
        self.scale = lora_scale(rank, alpha, scaling)
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, **factory))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, **factory))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * F.linear(F.linear(x, self.lora_A), self.lora_B)

    def delta_weight(self) -> torch.Tensor:
        """``s · B A``, ``(out, in)``: what merging adds to the base weight."""
        return self.scale * (self.lora_B @ self.lora_A)

    def extra_repr(self) -> str:
        alpha = "None" if self.alpha is None else f"{self.alpha:g}"
        return f"rank={self.rank}, alpha={alpha}, scaling={self.scaling!r} -> s={self.scale:g}"


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """``{module name: LoRALinear}`` for every LoRA layer in ``model``."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def add_lora(model: nn.Module, rank: int, alpha: float | None = None, targets: Sequence[str] = LORA_TARGETS,
             scaling: str = "alpha/r") -> nn.Module:
    """Wrap the linears named ``targets`` (``qkv``, ``proj``, ``fc1``, ``fc2``) of every block of a timm ViT in
    :class:`LoRALinear`; returns the model, changed in place. The output is unchanged, bit for bit, until
    ``B`` trains. Fails, changing nothing, on a model that already has LoRA or on an unknown target."""
    if lora_layers(model):
        raise ValueError("The model already has LoRA layers: merge_lora(model) or start from a fresh backbone.")
    unknown = set(targets) - set(LORA_TARGETS)
    if unknown or not targets:
        raise ValueError(f"Unknown LoRA targets {sorted(unknown) or targets!r}: choose from {', '.join(LORA_TARGETS)}.")
    lora_scale(rank, alpha, scaling)  # check the arguments before changing anything
    sites = [(parent, name) for block in model.blocks for parent in block.modules()
             for name, child in parent.named_children() if name in targets and isinstance(child, nn.Linear)]
    for parent, name in sites:
        setattr(parent, name, LoRALinear(getattr(parent, name), rank, alpha, scaling))
    return model


@torch.no_grad()
def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA update into its base weight, ``W ← W + s · B A``, and put the plain ``nn.Linear`` back:
    the model is a plain timm model again (no LoRA modules; same ``state_dict`` keys as before ``add_lora``)
    that computes what the LoRA model computed, up to float rounding. Changes the model in place; returns it."""
    for name, layer in lora_layers(model).items():
        parent_name, _, child = name.rpartition(".")
        layer.base.weight += layer.delta_weight().to(layer.base.weight.dtype)
        setattr(model.get_submodule(parent_name) if parent_name else model, child, layer.base)
    return model
