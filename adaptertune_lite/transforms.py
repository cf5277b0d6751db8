"""Batch transforms on the device: uint8 images to the backbone's input, and augmentation.

Datasets hold uint8 images; the training loop applies a split's ``transform`` to whole batches
where they live (on the GPU when there is one): to float, grey -> RGB, resize to the backbone's
input size, normalise with the mean/std of the backbone actually loaded (timm's
``resolve_data_config``, never hard-coded ImageNet statistics). Augmentation, when a recipe asks for
it, follows on training batches only.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from timm.data import resolve_data_config
from torch import nn


class BatchTransform(nn.Module):
    """uint8 images ``(B, C, H, W)`` -> normalised float ``(B, 3, S, S)`` for the backbone.

    Args:
        input_size: ``(3, S, S)`` the backbone expects; ``None`` keeps each batch's own size.
        mean, std: per-channel statistics of the backbone's pretraining.
    """

    def __init__(self, input_size=(3, 224, 224), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)):
        super().__init__()
        self.size = tuple(input_size[1:]) if input_size is not None else None
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() / 255
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.size is not None and tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", antialias=True, align_corners=False)
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def extra_repr(self) -> str:
        return f"size={self.size}, mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


def transform_for(model: nn.Module) -> BatchTransform:
    """The batch transform matching ``model``'s timm data config (mean, std) at the input size the
    model was built for (``patch_embed.img_size``, which wins over a config's default of 224)."""
    cfg = resolve_data_config(model=model)
    size = getattr(getattr(model, "patch_embed", None), "img_size", None)
    input_size = (3, *size) if size else cfg["input_size"]
    return BatchTransform(input_size, cfg["mean"], cfg["std"])


class RandomResizedCropFlip(nn.Module):
    """Batch augmentation on the device: a random crop of each image, resized back to its size, and a
    random horizontal flip (torchvision's ``RandomResizedCrop`` + ``RandomHorizontalFlip``, per image but
    in one ``grid_sample`` call for the whole batch, with no host sync).

    Args:
        scale: range of the crop's area as a fraction of the image.
        ratio: range of the crop's aspect ratio (width / height).
        flip: flip each image left-right with probability 0.5 (not for digits, whose mirror image is no digit).

    ``(B, C, H, W)`` float -> ``(B, C, H, W)``; identity in eval mode.
    """

    def __init__(self, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flip: bool = True):
        super().__init__()
        self.scale, self.ratio, self.flip = scale, ratio, flip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        b = len(x)
        u = lambda lo, hi: lo + (hi - lo) * torch.rand(b, device=x.device)  # noqa: E731
        area = u(*self.scale)
        aspect = torch.exp(u(*np.log(self.ratio)))
        w = torch.sqrt(area * aspect).clamp(max=1.0)  # crop size as a fraction of the image
        h = torch.sqrt(area / aspect).clamp(max=1.0)
        cx, cy = (1 - w) * u(-1.0, 1.0), (1 - h) * u(-1.0, 1.0)  # crop centre, the crop inside the image
        sign = torch.where(torch.rand(b, device=x.device) < 0.5, -1.0, 1.0) if self.flip else torch.ones(b, device=x.device)
        zero = torch.zeros_like(w)
        theta = torch.stack([torch.stack([w * sign, zero, cx], -1), torch.stack([zero, h, cy], -1)], 1)  # (B, 2, 3)
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, ratio={self.ratio}, flip={self.flip}"


def augmentation(name: str | None) -> nn.Module | None:
    """The batch augmentation a :class:`~adaptertune_lite.recipes.Recipe` names: ``"crop_flip"``,
    ``"crop"`` (no flip, for digits) or ``None``."""
    if name is None:
        return None
    if name == "crop_flip":
        return RandomResizedCropFlip(flip=True)
    if name == "crop":
        return RandomResizedCropFlip(flip=False)
    raise ValueError(f"Unknown augmentation {name!r}: choose None, 'crop_flip' or 'crop'.")
