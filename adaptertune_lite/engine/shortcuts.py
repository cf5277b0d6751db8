"""Shortcuts: train on what the frozen part of the network computes, computed once.

When the first part of a network trains nothing, its output for an image never changes, so it
can be computed once instead of every epoch:

* **head-only** trains the classification head alone: run the frozen backbone once over the data
  (eval mode), cache the pooled features ``(N, D)``, and train the head on them.
* **AdapterTune with adapters only in later blocks** (e.g. ``last_k(2)``): run the frozen
  embedding and blocks before the first adapter once, cache their tokens ``(N, T, D)``, and train
  the rest of the network (:class:`Suffix`) on them. With a post-block adapter, the first adapted
  block's own computation (before its adapter) is frozen too and is cached with them.

Both are exact for backbones without dropout or drop-path in the cached part (the kit's; their
LayerNorms keep no running statistics), because training runs the same function there. Augmented
images change every epoch, so nothing is cached when a recipe augments. :func:`shortcut` is the
one entry point ``fit`` calls.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from ..adapters import residual_hook
from ..backbones import extract_features
from ..data import iterate, on_device, transform_of
from ..methods import method as method_record
from .runtime import autocast, get_device


class Shortcut(NamedTuple):
    """What ``fit``'s loop trains: ``net`` on ``train`` (images, cached features or cached tokens), validated on ``val``."""

    net: nn.Module
    train: Dataset
    val: Dataset | None


@torch.no_grad()
def _run_frozen(model: nn.Module, dataset: Dataset, fn, batch_size: int, device: torch.device) -> TensorDataset:
    """One pass over ``dataset`` in eval mode: ``TensorDataset(fn(images) (N, ...), labels (N,))`` on ``device``."""
    model.eval().to(device)
    tf = transform_of(dataset, device)
    outputs, labels = [], []
    with autocast(device):
        for x, y in iterate(dataset, batch_size, False, device):
            outputs.append(fn(tf(x)).float())
            labels.append(y)
    return TensorDataset(torch.cat(outputs), torch.cat(labels))


def cache_features(model: nn.Module, dataset: Dataset, batch_size: int = 256, device: torch.device | None = None) -> TensorDataset:
    """Run the frozen backbone once: ``TensorDataset(features (N, embed_dim), labels (N,))`` on the CPU."""
    features = _run_frozen(model, dataset, lambda x: extract_features(model, x), batch_size, device or get_device())
    return TensorDataset(*(t.cpu() for t in features.tensors))


def frozen_prefix_depth(model: nn.Module) -> int:
    """How many leading blocks of ``model`` train nothing (nor does anything before them): their output
    never changes during training, so it can be computed once. 0 when the embedding trains."""
    if any(p.requires_grad for m in (model.patch_embed, model.norm_pre) for p in m.parameters()) or any(
        getattr(model, name, None) is not None and getattr(model, name).requires_grad for name in ("cls_token", "pos_embed", "reg_token")
    ):
        return 0
    for i, block in enumerate(model.blocks):
        if any(p.requires_grad for p in block.parameters()):
            return i
    return len(model.blocks)


def frozen_body(block: nn.Module) -> bool:
    """Whether ``block``'s only trainable part is a post-block adapter (``block.adapter``, applied by a hook to
    the block's output): the block's own output, before its adapter, then never changes either."""
    adapter = getattr(block, "adapter", None)
    if adapter is None:
        return False
    own = {id(p) for p in adapter.parameters()}
    return not any(p.requires_grad for p in block.parameters() if id(p) not in own)


def _prefix(model: nn.Module, x: torch.Tensor, depth: int, body: bool) -> torch.Tensor:
    """Images ``(B, 3, H, W)`` -> tokens ``(B, T, D)`` after the first ``depth`` blocks (timm's forward_features
    order) and, with ``body``, after block ``depth`` itself without its hooks: its output before its adapter."""
    x = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))
    for block in model.blocks[:depth]:
        x = block(x)
    return model.blocks[depth].forward(x) if body else x


class Suffix(nn.Module):
    """The part of a ViT after a cached prefix: tokens ``(B, T, D)`` -> logits ``(B, classes)``. With
    ``body``, the tokens are block ``start``'s output before its post-block adapter, which comes first."""

    def __init__(self, model: nn.Module, start: int, body: bool = False):
        super().__init__()
        self.model, self.start, self.body = model, start, body

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        blocks = list(self.model.blocks[self.start :])
        if self.body:
            tokens = residual_hook(blocks.pop(0), (), tokens)  # the adapter, as its hook applies it
        for block in blocks:
            tokens = block(tokens)  # checkpointed when fit's checkpointing is on (train.checkpointing)
        return self.model.forward_head(self.model.norm(tokens))


def cache_prefix(model: nn.Module, dataset: Dataset, depth: int, body: bool = False, batch_size: int = 256,
                 device: torch.device | None = None) -> TensorDataset:
    """Run the frozen prefix (embedding, the first ``depth`` blocks, and with ``body`` block ``depth`` before
    its adapter) once, in eval mode: ``TensorDataset(tokens (N, T, D), labels (N,))`` on ``device``."""
    return _run_frozen(model, dataset, lambda x: _prefix(model, x, depth, body), batch_size, device or get_device())


def shortcut(model: nn.Module, method: str, train: Dataset, val: Dataset | None, device: torch.device, *,
             head_features: bool = True, frozen_prefix: bool = False) -> Shortcut:
    """What ``fit`` trains for ``method``, from what its record (``methods.METHODS``) says can be cached: the head
    on cached features (``caches="features"``, head-only, with ``head_features``), the :class:`Suffix` on cached
    tokens (``caches="prefix"``, AdapterTune, with ``frozen_prefix`` and a frozen prefix to cache), or else the
    model itself on the images."""
    caches = method_record(method).caches
    run = lambda fn, d: fn(d) if d is not None else None  # noqa: E731  (val may be absent)
    if caches == "features" and head_features:
        cached = [run(lambda d: on_device(cache_features(model, d, device=device), device), d) for d in (train, val)]
        return Shortcut(model.get_classifier(), *cached)
    depth = frozen_prefix_depth(model)
    if caches == "prefix" and frozen_prefix and depth < len(model.blocks):
        body = frozen_body(model.blocks[depth])
        if depth > 0 or body:
            cached = [run(lambda d: cache_prefix(model, d, depth, body, device=device), d) for d in (train, val)]
            return Shortcut(Suffix(model, depth, body), *cached)
    return Shortcut(model, on_device(train, device), run(lambda d: on_device(d, device), val))
