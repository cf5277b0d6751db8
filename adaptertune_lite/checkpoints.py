"""Adapter checkpoints: save only the adapters and the head (safetensors), and load them back.

A checkpoint records the adapter configuration and the backbone's signature (architecture,
width, depth), so loading into the wrong backbone, or over adapters of another shape, fails
with a message that says what differs, and leaves the model untouched.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from .adapters import SITES, adapters_of, add_adapters
from .backbones import backbone_signature, head_name
from .engine.storage import atomic_path

FORMAT = "adaptertune_lite.adapters/1"


def save_adapters(model: nn.Module, path: str | os.PathLike) -> Path:
    """Save only the adapters and the classification head (safetensors), with the config to rebuild them.

    The file is written to a temporary name and renamed, so an interrupted save never leaves a
    half-written checkpoint behind. Returns the path written.
    """
    if not adapters_of(model):
        raise ValueError("The model has no adapters to save: call add_adapters(model, ...) first.")
    head = head_name(model)
    tensors = {
        k: v.detach().cpu().contiguous()
        for k, v in model.state_dict().items()
        if ".adapter." in f".{k}" or k.startswith(head + ".")
    }
    meta = {
        "format": FORMAT,
        "adapter_config": json.dumps(model.adapter_config.to_dict()),
        "backbone": json.dumps(backbone_signature(model)),
        "head": head,
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=meta)
    return path


def read_adapter_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read an adapter checkpoint: ``(tensors, metadata)``; a clear ``ValueError`` if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No adapter file at {path}: save one with save_adapters(model, path).")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:  # a truncated or foreign file (SafetensorError: a bad header)
        raise ValueError(
            f"{path} is not a readable safetensors adapter file ({err}). It may be truncated or of another "
            "format: save it again with save_adapters(model, path)."
        ) from err
    if meta.get("format") != FORMAT:
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
    current = model.adapter_config.to_dict() if adapters_of(model) else None
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
        for sub, _ in SITES[cfg["placement"]]:
            p = f"blocks.{i}." + (f"{sub}." if sub else "") + "adapter."
            out.update({p + "down.weight": (r, d), p + "down.bias": (r,), p + "up.weight": (d, r), p + "up.bias": (d,)})
    return out
