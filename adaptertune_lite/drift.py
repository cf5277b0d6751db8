"""Representation drift: how far an adapted network's features move from the pretrained ones."""

from __future__ import annotations

import torch
from torch import nn


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear centred kernel alignment (Kornblith et al., 2019) between two feature matrices.

    ``x``: (N, D1), ``y``: (N, D2), the same N examples. 1.0 means the same representation up to
    rotation and isotropic scaling; lower means the features moved.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"linear_cka needs the same examples in both: got {x.shape[0]} and {y.shape[0]} rows.")
    x = x.double() - x.double().mean(0, keepdim=True)
    y = y.double() - y.double().mean(0, keepdim=True)
    cross = (x.T @ y).norm() ** 2
    return float(cross / ((x.T @ x).norm() * (y.T @ y).norm()))


@torch.no_grad()
def block_outputs(model: nn.Module, x: torch.Tensor, tokens: str = "all") -> list[torch.Tensor]:
    """The residual stream after every block (adapters included), in eval mode.

    ``tokens="all"``: every token of every image, ``(B * T, D)`` per block (CLS and patches pooled
    together); ``tokens="cls"``: the CLS token only, ``(B, D)`` per block, what the head reads.
    """
    if tokens not in ("all", "cls"):
        raise ValueError(f"tokens must be 'all' or 'cls', not {tokens!r}.")
    pick = (lambda out: out.flatten(0, 1)) if tokens == "all" else (lambda out: out[:, 0])
    captured: list[torch.Tensor] = []
    hooks = [b.register_forward_hook(lambda m, a, out: captured.append(pick(out).float())) for b in model.blocks]
    was = model.training
    try:
        model.eval()
        model(x)
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    return captured


def block_cka(model: nn.Module, reference: nn.Module, x: torch.Tensor, tokens: str = "all") -> list[float]:
    """Linear CKA between ``model``'s and ``reference``'s stream after each block, on inputs ``x``
    (``tokens``: ``"all"`` or ``"cls"``, see :func:`block_outputs`)."""
    return [linear_cka(a, b) for a, b in zip(block_outputs(model, x, tokens), block_outputs(reference, x, tokens))]
