"""How the rank and the scale set the size of the first step: the measurement behind the course's statements about
the rank-step-size coupling (notebook 08 §4, notebook 05, the lecture demo, exercise 05).

A low-rank update ``s · B A`` starts at ``B = 0`` (LoRA; an AdapterTune adapter's ``W_up`` alike), so the first step
moves ``B`` only, and the change it makes to the output is ``s · ΔB · A x``, a sum over the ``r`` hidden units:

* under **Adam** every entry of ``B`` moves by about the learning rate whatever its gradient, so the change grows
  like ``s · r``: the ``α/r`` convention keeps it steady across ranks, ``α/√r`` lets it grow like ``√r``, a fixed
  scale (AdapterTune's) like ``r``;
* under **SGD** the step is the gradient, itself proportional to ``s``, so the change grows like ``s² · r``: there
  ``α/√r`` (rsLoRA's convention) keeps it steady and ``α/r`` shrinks it like ``1/r``.

:func:`first_step_change` measures it; :data:`LAWS` states the two laws, and :func:`predicted_growth` what they
predict between two ranks.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..lora import add_lora, lora_layers, lora_scale
from ..params import set_trainable

LAWS = {"adam": lambda s, r: s * r, "sgd": lambda s, r: s * s * r}  # how the first step's change grows with s and r
OPTIMIZERS = {"adam": lambda params, lr: torch.optim.AdamW(params, lr=lr, weight_decay=0.0),
              "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr)}


def first_step_change(model: nn.Module, x: torch.Tensor, y: torch.Tensor, rank: int, scaling: str, alpha: float,
                      optimizer: str = "adam", lr: float = 1e-4, seed: int = 0) -> float:
    """Relative change ``|Δlogits| / |logits|`` after one step of LoRA alone (the head frozen) on one batch.

    Args:
        model: the backbone with its head (copied, never changed).
        x, y: one batch, ``(B, 3, H, W)`` as the model takes it, and its labels ``(B,)``.
        rank, scaling, alpha: the LoRA update (``lora.add_lora``).
        optimizer: ``"adam"`` (AdamW without decay) or ``"sgd"``; ``lr``: small enough to stay in the linear regime.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {optimizer!r}: choose one of {', '.join(OPTIMIZERS)}.")
    torch.manual_seed(seed)  # the same A for every convention at a rank
    adapted = add_lora(copy.deepcopy(model), rank=rank, alpha=alpha, scaling=scaling).train()
    set_trainable(adapted, "lora")
    opt = OPTIMIZERS[optimizer]([p for layer in lora_layers(adapted).values() for p in (layer.lora_A, layer.lora_B)], lr)
    with torch.no_grad():
        before = adapted(x)
    F.cross_entropy(adapted(x), y).backward()
    opt.step()
    with torch.no_grad():
        return float((adapted(x) - before).norm() / before.norm())


def predicted_growth(optimizer: str, scaling: str, alpha: float, low: int, high: int) -> float:
    """What :data:`LAWS` predict for the change at rank ``high`` over the change at rank ``low``."""
    law = LAWS[optimizer]
    return law(lora_scale(high, alpha, scaling), high) / law(lora_scale(low, alpha, scaling), low)


def steady_convention(growth: dict[str, float]) -> str:
    """The convention whose measured growth from the smallest to the largest rank is closest to 1 (in log terms)."""
    return min(growth, key=lambda name: abs(math.log(growth[name])))
