"""Course profiles: the scale of the whole course (the kit backbone on the offline targets, or a pretrained timm ViT
on a torchvision dataset as in the paper), chosen once by :func:`profile`."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .. import backbones, data, recipes
from ..engine import runtime
from ..recipes import DEFAULT_TARGET, Recipe

PROFILE_ENV = "ADAPTERTUNE_PROFILE"  # "kit" or "paper": overrides the automatic choice
PAPER_BACKBONE_ENV, PAPER_DATASET_ENV = "ADAPTERTUNE_PAPER_BACKBONE", "ADAPTERTUNE_PAPER_DATASET"
PAPER_BACKBONE = "vit_small_patch16_224.augreg_in21k_ft_in1k"  # ViT-S/16, one of the paper's three backbones
PAPER_DATASET = "pets"  # Oxford-IIIT Pets: 3,680 trainval images, 37 classes; small, quick, one of the paper's core 5


@dataclass(frozen=True)
class Profile:
    """The scale of the whole course: what every notebook, widget, the lecture demo's live run and the CLI train
    on by default, and with what budget. :func:`profile` chooses one, once; nothing else reads the environment.

    Args:
        name: ``"kit"`` (the kit backbone on the offline targets) or ``"paper"`` (a pretrained timm ViT on a
            torchvision dataset, the paper's setting).
        backbone: the backbone runs load (``load_backbone`` name).
        dataset: the dataset runs train on (``load_dataset`` name).
        fast: the FAST budget (a laptop CPU, minutes) or the full one (``recipes.budget``).
        why: why this profile is the active one.
    """

    name: str
    backbone: str
    dataset: str
    fast: bool = True
    why: str = ""

    def budget(self, fast: bool | None = None) -> dict:
        """``{"n_train", "epochs"}`` of this profile's budget (``fast``: the other one, if given)."""
        return recipes.budget(self.dataset, self.fast if fast is None else fast)

    def recipe(self, method: str, fast: bool | None = None) -> Recipe:
        """The :class:`Recipe` a run of ``method`` gets in this profile (``recipes.recipe_for``)."""
        return recipes.recipe_for(method, self.dataset, fast=self.fast if fast is None else fast)

    def n_train(self, fast: bool | None = None) -> int | None:
        """Training images of this profile's budget (``None``: the whole train split)."""
        return self.budget(fast)["n_train"]

    def __str__(self) -> str:
        return f"{self.name} profile: {self.backbone} on {self.dataset}, {'FAST' if self.fast else 'full'} budget ({self.why})"


PROFILES = ("kit", "paper")


def _paper_setting() -> tuple[str, str]:
    return os.environ.get(PAPER_BACKBONE_ENV) or PAPER_BACKBONE, os.environ.get(PAPER_DATASET_ENV) or PAPER_DATASET


def _automatic() -> tuple[str, str]:
    """(profile, why): ``paper`` on a CUDA GPU with the Hub reachable or the weights and data already here."""
    if not torch.cuda.is_available():
        return "kit", "no CUDA GPU"
    backbone, dataset = _paper_setting()
    if backbone in backbones.cached_models() and data.dataset_present(dataset):
        return "paper", f"a CUDA GPU, {backbone} in the Hugging Face cache and {dataset} in {data.data_root()}"
    if backbones.hub_reachable():
        return "paper", "a CUDA GPU and the Hugging Face Hub reachable"
    return "kit", (f"a CUDA GPU but no internet and no cached {backbone} + {dataset}; fill the cache on a connected machine "
                   f"(see `adaptertune-lite doctor`) or set {PROFILE_ENV}=paper")


def profile(name: str | None = None, fast: bool | None = None) -> Profile:
    """The active :class:`Profile`, the one call that reads the environment and the hardware. ``fast``: the FAST
    budget, or (``None``) FAST mode as ``runtime.fast_mode`` decides it. The profile: ``name`` if given, else
    ``$ADAPTERTUNE_PROFILE``, else the automatic choice:
    ``paper`` on a CUDA GPU when the Hugging Face Hub is reachable (or the backbone's weights are in its cache and
    the dataset in the data folder), ``kit`` otherwise. In the paper profile ``$ADAPTERTUNE_PAPER_BACKBONE`` and
    ``$ADAPTERTUNE_PAPER_DATASET`` replace ViT-S/16 augreg and Oxford-IIIT Pets."""
    env = os.environ.get(PROFILE_ENV, "").strip().lower()
    if name is not None:
        why = "asked for"
    elif env:
        name, why = env, f"{PROFILE_ENV}={env}"
    else:
        name, why = _automatic()
    if name not in PROFILES:
        raise ValueError(f"Unknown profile {name!r} ({why}): choose one of {', '.join(PROFILES)}.")
    fast = runtime.fast_mode() if fast is None else fast
    if name == "kit":
        return Profile("kit", "kit_vit_tiny", DEFAULT_TARGET, fast, why)
    backbone, dataset = _paper_setting()
    return Profile("paper", backbone, dataset, fast, why)
