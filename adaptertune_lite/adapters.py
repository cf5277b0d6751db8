"""Residual bottleneck adapters and their insertion into a timm Vision Transformer.

An adapter is ``A(h) = W_up · GELU(W_down · h + b_down) + b_up`` used residually,
``h' = h + scale · A(h)``. With the AdapterTune ("zero") initialisation ``W_up = 0`` and
``b_up = 0``, so every adapter adds an exact zero and the adapted network computes the
pretrained function bit for bit until the first optimiser step.

Adapters attach as child modules of the module they modify (``blocks.3.adapter``,
``blocks.3.attn.adapter``, ...) and run through a forward hook on that module, so the
backbone's own ``state_dict`` keys never change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence, Union

import torch
from torch import nn

from .storage import atomic_path

INITS = ("zero", "small", "random")
PLACEMENTS = ("post_block", "post_attn", "post_mlp", "houlsby", "parallel")
BlockSpec = Union[str, Sequence[int]]

# placement -> [(sub-module of the block that gets the adapter, hook kind)]
# "" means the block itself. A "residual" hook adds A(output) to the module's output; a
# "parallel" hook adds A(input) to the output (AdaptFormer: beside the MLP, same input).
_SITES = {
    "post_block": [("", "residual")],
    "post_attn": [("attn", "residual")],
    "post_mlp": [("mlp", "residual")],
    "houlsby": [("attn", "residual"), ("mlp", "residual")],
    "parallel": [("mlp", "parallel")],
}


class Adapter(nn.Module):
    """Bottleneck ``dim -> rank -> dim`` with GELU; returns ``scale * A(h)``, the residual update.

    Args:
        dim: width ``d`` of the residual stream.
        rank: bottleneck width ``r``; parameters ``2*d*r + r + d``.
        init: ``"zero"`` (AdapterTune: Xavier ``W_down``, zero ``W_up`` and biases),
            ``"small"`` (``W_up ~ N(0, 1e-4^2)``: near-identity) or ``"random"``
            (Xavier ``W_up``: perturbs the pretrained features from the first forward).
        scale: multiplier ``s`` on the adapter output.

    Shapes: ``h`` is ``(..., dim)``; the output has the same shape.
    """

    def __init__(self, dim: int, rank: int, init: str = "zero", scale: float = 1.0):
        super().__init__()
        _check_rank(rank)
        _check_positive_int("dim", dim)
        _check_init(init)
        self.dim, self.rank, self.init, self.scale = dim, rank, init, float(scale)
        self.down = nn.Linear(dim, rank)
        self.act = nn.GELU()
        self.up = nn.Linear(rank, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.down.weight)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.bias)
        if self.init == "zero":
            nn.init.zeros_(self.up.weight)
        elif self.init == "small":
            nn.init.normal_(self.up.weight, std=1e-4)
        else:  # "random"
            nn.init.xavier_uniform_(self.up.weight)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.scale * self.up(self.act(self.down(h)))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, rank={self.rank}, init={self.init!r}, scale={self.scale}"


def num_adapter_params(dim: int, rank: int) -> int:
    """Parameters in one adapter: ``2*d*r + r + d``."""
    return 2 * dim * rank + rank + dim


# ----------------------------------------------------------------------------- blocks
def every_k(k: int) -> str:
    """Block selection: blocks 0, k, 2k, ... (as a string so configs stay serialisable)."""
    return f"every:{k}"


def first_k(k: int) -> str:
    """Block selection: the first ``k`` blocks."""
    return f"first:{k}"


def last_k(k: int) -> str:
    """Block selection: the last ``k`` blocks."""
    return f"last:{k}"


def resolve_blocks(blocks: BlockSpec, depth: int) -> list[int]:
    """Turn a block selection into a sorted list of block indices for a model of ``depth`` blocks.

    ``blocks`` is ``"all"``, ``"every:k"``, ``"first:k"``, ``"last:k"`` (see :func:`every_k`,
    :func:`first_k`, :func:`last_k`) or a sequence of indices (negative ones count from the end).
    """
    if isinstance(blocks, str):
        if blocks == "all":
            return list(range(depth))
        kind, _, k = blocks.partition(":")
        if kind in ("every", "first", "last") and k.isdigit() and int(k) > 0:
            k = int(k)
            if kind == "every":
                return list(range(0, depth, k))
            if k > depth:
                raise ValueError(f"blocks={blocks!r} asks for {k} blocks but the model has {depth}; use k <= {depth}.")
            return list(range(k)) if kind == "first" else list(range(depth - k, depth))
        raise ValueError(
            f"Unknown block selection {blocks!r}: use 'all', every_k(k), first_k(k), last_k(k) "
            "(e.g. 'last:4') or a list of block indices."
        )
    if isinstance(blocks, (int, bool)) or not all(isinstance(i, int) and not isinstance(i, bool) for i in blocks):
        raise TypeError(f"blocks must be 'all', a selection string or a list of ints, not {blocks!r}.")
    out = set()
    for i in blocks:
        if not -depth <= i < depth:
            raise ValueError(f"Block index {i} is out of range: the model has {depth} blocks (indices 0..{depth - 1}).")
        out.add(i % depth)
    if not out:
        raise ValueError("blocks is an empty list: name at least one block index.")
    return sorted(out)


# ----------------------------------------------------------------------------- hooks
def _residual_hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    return output + module.adapter(output)


def _parallel_hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    return output + module.adapter(args[0])


_HOOKS = {"residual": _residual_hook, "parallel": _parallel_hook}


def _model_width(model: nn.Module) -> int:
    dim = getattr(model, "embed_dim", None) or getattr(model, "num_features", None)
    if not isinstance(dim, int):
        raise TypeError("Cannot tell the model's width: expected a timm ViT with an integer `.embed_dim`.")
    return dim


def add_adapters(
    model: nn.Module,
    rank: int = 16,
    placement: str = "post_block",
    blocks: BlockSpec = "all",
    init: str = "zero",
    scale: float = 1.0,
) -> nn.Module:
    """Attach adapters to a timm ViT in place and return it.

    Args:
        model: a timm Vision Transformer (anything with ``.blocks`` whose blocks have ``.attn`` and ``.mlp``).
        rank: bottleneck width ``r`` (positive int).
        placement: ``"post_block"`` (AdapterTune: on the residual stream after the block),
            ``"post_attn"`` / ``"post_mlp"`` (on the sub-layer output before its residual add),
            ``"houlsby"`` (both) or ``"parallel"`` (beside the MLP, fed the MLP's input).
        blocks: ``"all"``, ``every_k(k)``, ``first_k(k)``, ``last_k(k)`` or a list of block indices.
        init: ``"zero"``, ``"small"`` or ``"random"`` (see :class:`Adapter`).
        scale: output multiplier of every adapter.

    Everything is checked before the model is touched, so a bad argument leaves it unmodified.
    The backbone's parameter names are unchanged; adapters appear as ``...adapter.down.weight`` etc.
    """
    _check_rank(rank)
    _check_init(init)
    if placement not in PLACEMENTS:
        raise ValueError(f"Unknown placement {placement!r}: choose one of {', '.join(PLACEMENTS)}.")
    if not isinstance(getattr(model, "blocks", None), nn.Sequential | nn.ModuleList):
        raise TypeError(
            f"{type(model).__name__} has no `.blocks` of transformer blocks: add_adapters expects a timm "
            "VisionTransformer (e.g. load_backbone('kit_vit_tiny', ...) or timm.create_model('vit_small_patch16_224'))."
        )
    if adapters_of(model):
        raise ValueError(
            "This model already has adapters. Adding them twice would stack two adapters per site: "
            "start from a fresh backbone (load_backbone(...)) instead."
        )
    dim = _model_width(model)
    indices = resolve_blocks(blocks, len(model.blocks))
    sites = []
    for i in indices:
        for sub, kind in _SITES[placement]:
            target = model.blocks[i].get_submodule(sub) if sub else model.blocks[i]
            if sub and not isinstance(target, nn.Module):
                raise TypeError(f"Block {i} has no `.{sub}` module for placement {placement!r}.")
            sites.append((target, kind))

    for target, kind in sites:  # all checks passed: now modify
        target.adapter = Adapter(dim, rank, init=init, scale=scale)
        target.register_forward_hook(_HOOKS[kind])
    model.adapter_config = {
        "rank": rank,
        "placement": placement,
        "blocks": indices,
        "init": init,
        "scale": float(scale),
        "dim": dim,
    }
    return model


def adapters_of(model: nn.Module) -> dict[str, Adapter]:
    """All adapters in ``model`` by their module name, e.g. ``{'blocks.0.adapter': Adapter(...)}``."""
    return {name: m for name, m in model.named_modules() if isinstance(m, Adapter)}


# ----------------------------------------------------------------------------- save / load
def _head_name(model: nn.Module) -> str:
    head = model.get_classifier() if hasattr(model, "get_classifier") else getattr(model, "head", None)
    for name, m in model.named_modules():
        if m is head and name:
            return name
    raise TypeError("Cannot find the classification head: expected a timm model with get_classifier().")


def backbone_signature(model: nn.Module) -> dict:
    """What identifies a backbone for adapter checkpoints: architecture name, width and depth."""
    arch = (getattr(model, "pretrained_cfg", None) or {}).get("architecture") or type(model).__name__
    return {"architecture": arch, "dim": _model_width(model), "depth": len(model.blocks)}


def save_adapters(model: nn.Module, path: str | os.PathLike) -> Path:
    """Save only the adapters and the classification head (safetensors), with the config to rebuild them.

    The file is written to a temporary name and renamed, so an interrupted save never leaves a
    half-written checkpoint behind. Returns the path written.
    """
    from safetensors.torch import save_file

    if not adapters_of(model):
        raise ValueError("The model has no adapters to save: call add_adapters(model, ...) first.")
    head = _head_name(model)
    tensors = {
        k: v.detach().cpu().contiguous()
        for k, v in model.state_dict().items()
        if ".adapter." in f".{k}" or k.startswith(head + ".")
    }
    meta = {
        "format": "adaptertune_lite.adapters/1",
        "adapter_config": json.dumps(model.adapter_config),
        "backbone": json.dumps(backbone_signature(model)),
        "head": head,
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=meta)
    return path


def read_adapter_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read an adapter checkpoint: ``(tensors, metadata)``; a clear ``ValueError`` if it is not one."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No adapter file at {path}: save one with save_adapters(model, path).")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors raises its own error types for corrupt files
        raise ValueError(
            f"{path} is not a readable safetensors adapter file ({err}). It may be truncated or of another "
            "format: save it again with save_adapters(model, path)."
        ) from err
    if meta.get("format") != "adaptertune_lite.adapters/1":
        raise ValueError(f"{path} is a safetensors file but not an adapter checkpoint written by save_adapters().")
    return tensors, {
        "adapter_config": json.loads(meta["adapter_config"]),
        "backbone": json.loads(meta["backbone"]),
        "head": meta["head"],
    }


def load_adapters(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load adapters and head saved by :func:`save_adapters` into ``model`` (in place) and return it.

    If ``model`` has no adapters yet they are added with the saved configuration. Everything is
    checked first (backbone, adapter config, tensor shapes); on any mismatch a ``ValueError``
    says what differs and the model is left unmodified.
    """
    tensors, meta = read_adapter_file(path)
    sig = backbone_signature(model)
    if sig != meta["backbone"]:
        raise ValueError(
            f"{path} was saved for backbone {meta['backbone']} but this model is {sig}: load it into the "
            "same backbone it was trained on (load_backbone(<that name>, ...))."
        )
    saved_cfg = meta["adapter_config"]
    current = getattr(model, "adapter_config", None) if adapters_of(model) else None
    keys = ("rank", "placement", "blocks", "dim", "scale")
    if current is not None and any(current[k] != saved_cfg[k] for k in keys):
        diff = {k: (saved_cfg[k], current[k]) for k in keys if saved_cfg[k] != current[k]}
        raise ValueError(
            f"{path} holds adapters with a different configuration (saved, model): {diff}. "
            "Load it into a fresh backbone (the adapters are then rebuilt from the file) or add matching adapters."
        )
    own = model.state_dict()
    head = meta["head"]
    for k, v in tensors.items():
        if not k.startswith(head + ".") and ".adapter." not in f".{k}":
            raise ValueError(f"{path} holds a non-adapter tensor {k!r}: not an adapter checkpoint.")
        if k.startswith(head + ".") and (k not in own or own[k].shape != v.shape):
            shape = tuple(own[k].shape) if k in own else None
            raise ValueError(
                f"Head tensor {k} is {tuple(v.shape)} in {path} but {shape} in the model: create the backbone "
                "with the same num_classes as when the adapters were saved."
            )
    expected = _expected_adapter_shapes(saved_cfg)
    got = {k: tuple(v.shape) for k, v in tensors.items() if ".adapter." in f".{k}"}
    if expected != got:
        raise ValueError(
            f"{path} does not hold the adapter tensors its own config describes ({len(got)} tensors, "
            f"{len(expected)} expected): the file is damaged; save it again with save_adapters()."
        )
    if current is None:  # all checks passed: now modify
        add_adapters(model, **{k: saved_cfg[k] for k in ("rank", "placement", "blocks", "init", "scale")})
    model.load_state_dict(tensors, strict=False)
    return model


def _expected_adapter_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes that adapters built from ``cfg`` (an ``adapter_config``) have."""
    d, r = cfg["dim"], cfg["rank"]
    out = {}
    for i in cfg["blocks"]:
        for sub, _ in _SITES[cfg["placement"]]:
            p = f"blocks.{i}." + (f"{sub}." if sub else "") + "adapter."
            out.update({p + "down.weight": (r, d), p + "down.bias": (r,), p + "up.weight": (d, r), p + "up.bias": (d,)})
    return out


def _check_rank(rank: object) -> None:
    if isinstance(rank, bool) or not isinstance(rank, int):
        raise TypeError(f"rank must be a positive int (e.g. 16), not {rank!r} of type {type(rank).__name__}.")
    if rank <= 0:
        raise ValueError(f"rank must be a positive int (e.g. 16), not {rank}.")


def _check_positive_int(what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{what} must be a positive int, not {value!r}.")


def _check_init(init: str) -> None:
    if init not in INITS:
        raise ValueError(f"Unknown init {init!r}: choose one of {', '.join(INITS)}.")

