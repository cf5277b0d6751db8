"""Backbones: any timm Vision Transformer, or the kit's own small ViT that works offline.

The kit backbones are plain timm ``VisionTransformer`` instances, so every adapter, training
and plotting function treats them exactly like ``vit_small_patch16_224``. Their weights were
pretrained by ``adaptertune-lite pretrain`` on procedurally generated images and ship inside
the package with a provenance JSON (recipe, seed, accuracy, sha256).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import huggingface_hub.constants as hf_constants
import timm
import torch
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
from safetensors.torch import load_file
from timm.models.vision_transformer import VisionTransformer
from torch import nn

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class KitBackbone:
    """Architecture of a kit backbone; weights live in ``weights/<name>.safetensors``."""

    name: str
    img_size: int
    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    pretrain_classes: int
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    extra: dict = field(default_factory=dict)

    @property
    def weights_path(self) -> Path:
        return WEIGHTS_DIR / f"{self.name}.safetensors"

    @property
    def provenance_path(self) -> Path:
        return WEIGHTS_DIR / f"{self.name}.json"

    def build(self, num_classes: int | None = None) -> VisionTransformer:
        """A randomly initialised timm VisionTransformer of this architecture."""
        model = VisionTransformer(
            img_size=self.img_size,
            patch_size=self.patch_size,
            embed_dim=self.embed_dim,
            depth=self.depth,
            num_heads=self.num_heads,
            num_classes=self.pretrain_classes if num_classes is None else num_classes,
            **self.extra,
        )
        model.pretrained_cfg = {
            "architecture": self.name,
            "input_size": (3, self.img_size, self.img_size),
            "mean": self.mean,
            "std": self.std,
            "interpolation": "bilinear",
            "crop_pct": 1.0,
            "num_classes": model.num_classes,
        }
        return model


# Sizes chosen by measurement on a 2-core CPU (see benchmarks/kit_backbone.py): 32-px input with
# 8-px patches gives 16 tokens + [CLS], fast enough for a live rank sweep on a laptop.
# Two pretrainings of the same architecture (benchmarks/results/ has their reports):
# - kit_vit_tiny, the course default: 512 fractal classes. Digits are a domain gap that adapters help bridge.
# - kit_vit_tiny_glyphs: 256 fractal + 256 glyph classes (random strokes, close to digits). A linear probe
#   is already as good as AdapterTune on digits: the "pretraining data resembles the target" case.
KIT_BACKBONES: dict[str, KitBackbone] = {
    name: KitBackbone(name=name, img_size=32, patch_size=8, embed_dim=192, depth=6, num_heads=3, pretrain_classes=512)
    for name in ("kit_vit_tiny", "kit_vit_tiny_glyphs")
}


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def kit_provenance(name: str = "kit_vit_tiny") -> dict:
    """The provenance record written by ``adaptertune-lite pretrain`` for a shipped kit backbone."""
    kit = KIT_BACKBONES[name]
    if not kit.provenance_path.is_file():
        raise FileNotFoundError(_not_built(name))
    return json.loads(kit.provenance_path.read_text())


def _not_built(name: str) -> str:
    return (
        f"The weights of kit backbone {name!r} are not built yet ({KIT_BACKBONES[name].weights_path} is missing). "
        f"Build them with `adaptertune-lite pretrain --backbone {name}`, or use pretrained=False for a random backbone."
    )


@functools.lru_cache(maxsize=None)
def _verify(path: Path, expected: str, size: int, mtime_ns: int) -> None:
    """Check the file's sha256 against its provenance once per process and version of the file (its size and
    modification time are part of the cache key, so a replaced file is checked again)."""
    actual = sha256_of(path)
    if expected != actual:
        raise ValueError(
            f"{path} has sha256 {actual} but its provenance says {expected}: the file is damaged "
            "or was replaced. Reinstall the kit (git checkout the weights) or rebuild with `adaptertune-lite pretrain`."
        )


def _load_kit(name: str, num_classes: int | None, pretrained: bool) -> VisionTransformer:
    kit = KIT_BACKBONES[name]
    model = kit.build()
    if pretrained:
        if not kit.weights_path.is_file():
            raise FileNotFoundError(_not_built(name))
        stat = kit.weights_path.stat()
        _verify(kit.weights_path, kit_provenance(name).get("sha256"), stat.st_size, stat.st_mtime_ns)
        model.load_state_dict(load_file(kit.weights_path))
    if num_classes is not None and num_classes != model.num_classes:
        model.reset_classifier(num_classes)
        model.pretrained_cfg = {**model.pretrained_cfg, "num_classes": num_classes}
    return model


def cached_models() -> list[str]:
    """timm models whose weights are in the local Hugging Face cache (``models--timm--NAME``): they load offline.
    On a cluster node without internet, fill the cache on a login node (``load_backbone(name)`` once there)."""
    root = Path(hf_constants.HF_HUB_CACHE)
    return sorted(p.name.split("--", 2)[2] for p in root.glob("models--timm--*")) if root.is_dir() else []


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host`` opens within ``timeout`` seconds."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def load_backbone(
    name: str,
    num_classes: int | None = None,
    pretrained: bool = True,
    weights_file: str | os.PathLike | None = None,
    **timm_kwargs,
) -> nn.Module:
    """Load a Vision Transformer backbone with a fresh ``num_classes`` head.

    Args:
        name: a kit backbone (``"kit_vit_tiny"``, works offline) or any timm ViT name
            (e.g. ``"vit_small_patch16_224.augreg_in21k_ft_in1k"``, needs the Hugging Face Hub or a cache).
        num_classes: classes of the new head; ``None`` keeps the pretrained head (kit backbones:
            the pretraining head over the procedural classes).
        pretrained: load pretrained weights (``False``: random initialisation).
        weights_file: a local weights file for a timm model (downloaded elsewhere), used instead of the Hub.
        timm_kwargs: passed to ``timm.create_model`` (e.g. ``img_size=96``).
    """
    if name in KIT_BACKBONES:
        if weights_file is not None or timm_kwargs:
            raise ValueError(f"{name!r} is a kit backbone: it takes no weights_file or timm arguments.")
        return _load_kit(name, num_classes, pretrained)
    if not timm.is_model(name):
        raise ValueError(
            f"Unknown backbone {name!r}: use a kit backbone ({', '.join(KIT_BACKBONES)}) or a timm ViT name "
            "such as 'vit_small_patch16_224' (timm.list_models('vit_*') lists them)."
        )
    kwargs = dict(timm_kwargs)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if not pretrained:
        return timm.create_model(name, pretrained=False, **kwargs)
    if weights_file is not None:
        if not Path(weights_file).is_file():
            raise FileNotFoundError(f"weights_file {weights_file} does not exist.")
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(weights_file)}, **kwargs)
    cached = hub_cache_file(name)
    if cached is not None:  # in the local Hugging Face cache: loaded from there, with no network call
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": cached}, **kwargs)
    # To download: a 3-second probe first, because offline the Hub client retries for about 50 s before it gives up.
    reachable = hub_reachable()
    try:
        if not reachable:
            raise ConnectionError("huggingface.co:443 did not answer within 3 s")
        return timm.create_model(name, pretrained=True, **kwargs)  # downloads from the Hub into the cache
    except (OSError, HfHubHTTPError) as err:  # no connection, or the Hub refused (LocalEntryNotFoundError is an OSError)
        raise RuntimeError(
            f"Cannot load pretrained weights for {name!r}: they are not in the local Hugging Face cache and the Hub "
            f"could not be reached ({type(err).__name__}: {err}). Either use the kit's offline backbone, "
            "load_backbone('kit_vit_tiny', num_classes=...), or download the weights on a connected machine and pass "
            "load_backbone(name, num_classes, weights_file='path/to/model.safetensors')."
        ) from err


def hub_cache_file(name: str) -> str | None:
    """The path of timm model ``name``'s weights in the local Hugging Face cache, or ``None``. Asked with
    ``local_files_only`` (no network call, no process-wide offline switch)."""
    cfg = timm.models.get_pretrained_cfg(name)
    hub_id = getattr(cfg, "hf_hub_id", None)
    if not hub_id:
        return None
    try:
        return hf_hub_download(hub_id, getattr(cfg, "hf_hub_filename", None) or "model.safetensors", local_files_only=True,
                               cache_dir=hf_constants.HF_HUB_CACHE)
    except LocalEntryNotFoundError:  # not downloaded yet
        return None


# ----------------------------------------------------------------------------- backbone questions
def model_width(model: nn.Module) -> int:
    """Width ``d`` of a ViT's residual stream (``embed_dim``)."""
    dim = getattr(model, "embed_dim", None) or getattr(model, "num_features", None)
    if not isinstance(dim, int):
        raise TypeError("Cannot tell the model's width: expected a timm ViT with an integer `.embed_dim`.")
    return dim


def head_name(model: nn.Module) -> str:
    """The module name of the classification head, e.g. ``'head'``."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else getattr(model, "head", None)
    for name, m in model.named_modules():
        if m is head and name:
            return name
    raise TypeError("Cannot find the classification head: expected a timm model with get_classifier().")


def backbone_signature(model: nn.Module) -> dict:
    """What identifies a backbone for adapter checkpoints: architecture name, width and depth."""
    arch = (getattr(model, "pretrained_cfg", None) or {}).get("architecture") or type(model).__name__
    return {"architecture": arch, "dim": model_width(model), "depth": len(model.blocks)}


def extract_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Pooled pre-logit features of a timm ViT: ``(B, C, H, W) -> (B, embed_dim)``; the head maps them to logits."""
    return model.forward_head(model.forward_features(x), pre_logits=True)
