"""Training recipes: the one place ``fit``, ``RunConfig``, the CLI, the notebooks and the benchmarks read them.

A :class:`Recipe` is everything about *how* a run trains (optimiser, schedule, budget, augmentation);
what it trains (backbone, dataset, method, adapters) lives in ``experiments.RunConfig``, and how
fast it runs (caching, checkpointing, compiling) in ``train.Speedups``, which never changes a result.

``OFFICIAL_RECIPE`` is the official AdapterTune recipe for timm ViTs at 224 px (its configs/base.yaml:
AdamW lr 1e-3, weight decay 0.05, cosine with 5 warm-up epochs of 50, gradient clipping 1.0, batch 128,
and its training transform: random resized crop + horizontal flip); ``TORCHVISION_RECIPES`` applies it
per dataset. ``Recipe()`` has the official optimiser, schedule and budget at batch 64 without
augmentation, the base the kit recipes change. On the small kit backbone and small datasets the learning
rates below were chosen by measurement (benchmarks/kit_backbone.py): the linear probe wants a larger
step, full fine-tuning a smaller one.

The course default target is ``left_digit`` (see ``adaptertune_lite.targets``): a task where the
frozen features are not enough, so head-only, AdapterTune and full fine-tuning differ.
``mnist5k`` and ``digits`` are the "easy transfer" contrast.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields, replace

import torch

from . import backbones, data
from .runtime import by_mode

AUGMENTATIONS = ("crop_flip", "crop")  # see transforms.augmentation


@dataclass(frozen=True)
class Recipe:
    """How one run trains. Frozen, so it can be part of a run's key. ``Recipe()``: the official optimiser,
    schedule and epochs, at batch 64 without augmentation (``OFFICIAL_RECIPE`` is the whole official recipe).

    Args:
        lr: AdamW's peak learning rate.
        weight_decay: AdamW's decoupled weight decay, on matrices only (not biases, norms, tokens).
        epochs: passes over the training set.
        batch_size: images per optimiser step.
        warmup_epochs: linear warm-up before the cosine decay; ``None`` means 10 % of ``epochs`` (5 of 50).
        grad_clip: clip the gradient norm of the trained parameters to this (``None``: no clipping).
        label_smoothing: cross-entropy label smoothing.
        augment: ``None``, or a batch augmentation on the device applied to training images only:
            ``"crop_flip"`` (random resized crop + horizontal flip) or ``"crop"`` (no flip: digits).
    """

    lr: float = 1e-3
    weight_decay: float = 0.05
    epochs: int = 50
    batch_size: int = 64
    warmup_epochs: float | None = None
    grad_clip: float | None = 1.0
    label_smoothing: float = 0.0
    augment: str | None = None

    def __post_init__(self):
        if not (isinstance(self.epochs, int) and self.epochs >= 1 and isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ValueError(f"epochs and batch_size must be ints >= 1 (got epochs={self.epochs}, batch_size={self.batch_size}).")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, not {self.lr}.")
        if self.augment is not None and self.augment not in AUGMENTATIONS:
            raise ValueError(f"Unknown augment {self.augment!r}: choose None or one of {', '.join(AUGMENTATIONS)}.")

    def replace(self, **changes) -> "Recipe":
        """A copy with ``changes``: ``recipe.replace(epochs=3)``."""
        return replace(self, **changes)

    @property
    def warmup(self) -> float:
        """Warm-up length in epochs (``warmup_epochs``, or 10 % of ``epochs``)."""
        return 0.1 * self.epochs if self.warmup_epochs is None else self.warmup_epochs

    def to_dict(self) -> dict:
        return asdict(self)


RECIPE_FIELDS = tuple(f.name for f in fields(Recipe))

# The official recipe (github salimkhazem/adaptertune, configs/base.yaml and its training transform), the same
# for head-only, AdapterTune and full fine-tuning. (Its full-benchmark script trains at batch 1024 with the
# learning rate scaled linearly, 5e-4; base.yaml's batch 128 and lr 1e-3 are the per-run defaults used here.)
OFFICIAL_RECIPE = Recipe(batch_size=128, augment="crop_flip")

# Timm ViTs on torchvision datasets: the official recipe on every dataset, with one kit choice, labelled: SVHN's
# digits are not flipped (a mirrored digit is another glyph or none), where the official transform flips them.
TORCHVISION_RECIPES: dict[str, Recipe] = {
    "cifar10": OFFICIAL_RECIPE, "cifar100": OFFICIAL_RECIPE, "pets": OFFICIAL_RECIPE, "flowers102": OFFICIAL_RECIPE,
    "food101": OFFICIAL_RECIPE,
    "svhn": OFFICIAL_RECIPE.replace(augment="crop"),  # kit choice: no flip for digits
}

DEFAULT_TARGET = "left_digit"  # the dataset of every comparison, elbow and placement demo
EASY_TARGETS = ("mnist5k", "digits")  # where a linear probe on the frozen features is already strong

# Per method on the kit backbone (the rest of each recipe is Recipe()'s; epochs come from BUDGETS, x HEAD_ONLY_EPOCHS_FACTOR for head-only).
# Every rate was chosen on validation accuracy, never test, by benchmarks/kit_lr.py (report: benchmarks/results/kit_lr.md):
# left_digit at the FAST budget (1000 images, 3 epochs), the best mean over 3 seeds of a small grid, the full budget's
# choice (1 seed) beside it. The kit changes a rate only when the best beats it by a paired 95 % interval over the seeds
# (stats.paired_difference), the course's own bar for calling a difference.
KIT_RECIPES: dict[str, Recipe] = {
    "head_only": Recipe(lr=3e-2),  # head on cached features; 1e-2 / 3e-2 / 1e-1: 72.2 / 73.1 / 73.3 %, flat once converged
    "adapter_tune": Recipe(lr=1e-2),  # adapters (r=16) + head; 2e-3 / 5e-3 / 1e-2 / 2e-2: 73.1 / 83.3 / 87.4 / 85.7 %
    "full_finetune": Recipe(lr=1e-3),  # every weight; 2e-4 / 5e-4 / 1e-3 / 2e-3: 84.0 / 90.3 / 90.6 / 81.5 %
    "lora": Recipe(lr=1e-2),  # LoRA (r=2, s=1) + head; 5e-3 / 1e-2 / 2e-2 / 4e-2: 82.6 / 87.6 / 87.8 / 9.1 % (diverges)
    "bitfit": Recipe(lr=2e-2),  # biases + head; 1e-2 / 2e-2 / 5e-2 / 1e-1: 72.0 / 73.6 / 43.5 / 9.8 %
}
# (AdapterTune used 5e-3 before, chosen on test accuracy on mnist5k; full FT 5e-4, chosen at an earlier FAST budget of
# 6 epochs.) Notebook 07 shows such a choice live; notebook 08 uses these rates.

# Head-only trains on cached features (nothing to recompute between epochs: a few milliseconds per epoch on the kit)
# and a linear probe converges slowly, so in every profile it gets 40x the budget's epochs (FAST left_digit: 120
# epochs, 3 s on a 2-core CPU). Notebooks 04 and 07 show its validation accuracy at a quarter of them against all of
# them, so "converged" is measured, not assumed (the kit report's head-only rose from 63.6 % at 4 epochs to 79.2 % at
# 50 on left_digit).
HEAD_ONLY_EPOCHS_FACTOR = 40

# Training budget per dataset: training images (None: the whole train split) and epochs, in FAST
# mode (laptop CPU) and in a full run.
BUDGETS: dict[str, dict[str, dict]] = {
    # FAST: 1000 images x 3 epochs (48 steps), part of keeping the whole FAST course (notebooks and solutions) within
    # 8 minutes on a 2-core CPU. benchmarks/course_time.py measured 19.5 min at 6 epochs, 9.7 min at 3, and 7.3 min once
    # notebooks 05-07 ran smaller FAST grids (2026-12-05, report benchmarks/results/course_time_cpu.md); 3 epochs halve
    # every run and cost about 3 points (AdapterTune r=16, validation, 3 seeds: 90.1 % at 6 epochs, 87.4 % at 3).
    "left_digit": {"fast": {"n_train": 1000, "epochs": 3}, "full": {"n_train": None, "epochs": 15}},
    "max_digit": {"fast": {"n_train": 1000, "epochs": 3}, "full": {"n_train": None, "epochs": 15}},
    # Easy transfer saturates fast: 600 images x 2 epochs keeps notebooks 03 and 04 within their FAST time.
    "mnist5k": {"fast": {"n_train": 600, "epochs": 2}, "full": {"n_train": None, "epochs": 15}},
    "digits": {"fast": {"n_train": 600, "epochs": 2}, "full": {"n_train": None, "epochs": 15}},
}


def _pick(budgets: dict, fast: bool | None) -> dict:
    """The ``"fast"`` or ``"full"`` entry of ``budgets``; ``fast=None`` follows FAST mode."""
    return by_mode(budgets["fast"], budgets["full"]) if fast is None else budgets["fast" if fast else "full"]


def _budget(dataset: str, fast: bool | None) -> dict:
    if dataset not in BUDGETS:
        raise ValueError(f"No kit recipe for dataset {dataset!r}: choose one of {', '.join(BUDGETS)}.")
    return _pick(BUDGETS[dataset], fast)


def kit_recipe(method: str, dataset: str = DEFAULT_TARGET, fast: bool | None = None) -> Recipe:
    """The kit's :class:`Recipe` for ``method`` on ``dataset``, with the FAST or the full budget's epochs
    (head-only: :data:`HEAD_ONLY_EPOCHS_FACTOR` times as many, on cached features).

    ``fast`` picks the budget; ``None`` follows :func:`~adaptertune_lite.runtime.fast_mode`.
    """
    if method not in KIT_RECIPES:
        raise ValueError(f"Unknown method {method!r}: choose one of {', '.join(KIT_RECIPES)}.")
    epochs = _budget(dataset, fast)["epochs"] * (HEAD_ONLY_EPOCHS_FACTOR if method == "head_only" else 1)
    return KIT_RECIPES[method].replace(epochs=epochs)


def kit_n_train(dataset: str = DEFAULT_TARGET, fast: bool | None = None) -> int | None:
    """How many training images the kit recipe uses on ``dataset`` (``None``: all of its train split)."""
    return _budget(dataset, fast)["n_train"]


def recipe_for(method: str, dataset: str = DEFAULT_TARGET, fast: bool | None = None) -> Recipe:
    """The recipe a run of ``method`` on ``dataset`` gets when none is given: the kit's on a kit dataset, the
    official one per torchvision dataset (:data:`TORCHVISION_RECIPES`), else ``OFFICIAL_RECIPE``."""
    if dataset in BUDGETS:
        return kit_recipe(method, dataset, fast)
    return TORCHVISION_RECIPES.get(dataset, OFFICIAL_RECIPE)


def n_train_for(dataset: str, fast: bool | None = None) -> int | None:
    """Training images a run on ``dataset`` uses by default: the kit budget's on a kit dataset, else all."""
    return kit_n_train(dataset, fast) if dataset in BUDGETS else None


# ----------------------------------------------------------------------------- profiles: the course's scale
PROFILE_ENV = "ADAPTERTUNE_PROFILE"  # "kit" or "paper": overrides the automatic choice
PAPER_BACKBONE_ENV, PAPER_DATASET_ENV = "ADAPTERTUNE_PAPER_BACKBONE", "ADAPTERTUNE_PAPER_DATASET"
PAPER_BACKBONE = "vit_small_patch16_224.augreg_in21k_ft_in1k"  # ViT-S/16, one of the paper's three backbones
PAPER_DATASET = "pets"  # Oxford-IIIT Pets: 3,680 trainval images, 37 classes; small, quick, one of the paper's core 5

# The paper profile's budgets. Full (a GPU): the whole train split for 10 epochs, a kit choice sized for a Colab T4
# (notebook 07 estimates what a run costs there from counted FLOPs); the official recipe trains 50. FAST (a CPU, or
# CI with a tiny local dataset): 32 images for 2 epochs, only to show the code path runs.
PAPER_BUDGET = {"fast": {"n_train": 32, "epochs": 2}, "full": {"n_train": None, "epochs": 10}}


@dataclass(frozen=True)
class Profile:
    """The scale of the whole course: what every notebook, widget, the lecture demo's live run and the CLI train
    on by default, and with what budget. :func:`profile` chooses one.

    Args:
        name: ``"kit"`` (the kit backbone on the offline targets) or ``"paper"`` (a pretrained timm ViT on a
            torchvision dataset, the paper's setting).
        backbone: the backbone runs load (``load_backbone`` name).
        dataset: the dataset runs train on (``load_dataset`` name).
        why: why this profile is the active one.
    """

    name: str
    backbone: str
    dataset: str
    why: str = ""

    def budget(self, fast: bool | None = None) -> dict:
        """``{"n_train", "epochs"}`` of this profile's FAST or full budget (``fast=None``: follow FAST mode)."""
        if self.name == "kit":
            return _budget(self.dataset, fast)
        return _pick(PAPER_BUDGET, fast)

    def recipe(self, method: str, fast: bool | None = None) -> Recipe:
        """The :class:`Recipe` a run of ``method`` gets in this profile."""
        if self.name == "kit":
            return kit_recipe(method, self.dataset, fast)
        if method not in KIT_RECIPES:
            raise ValueError(f"Unknown method {method!r}: choose one of {', '.join(KIT_RECIPES)}.")
        epochs = self.budget(fast)["epochs"]
        if method == "head_only":  # on cached features: no augmentation, more (cheap) epochs
            return TORCHVISION_RECIPES.get(self.dataset, OFFICIAL_RECIPE).replace(augment=None, epochs=HEAD_ONLY_EPOCHS_FACTOR * epochs)
        return TORCHVISION_RECIPES.get(self.dataset, OFFICIAL_RECIPE).replace(epochs=epochs)

    def n_train(self, fast: bool | None = None) -> int | None:
        """Training images of this profile's budget (``None``: the whole train split)."""
        return self.budget(fast)["n_train"]

    def __str__(self) -> str:
        return f"{self.name} profile: {self.backbone} on {self.dataset} ({self.why})"


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


def profile(name: str | None = None) -> Profile:
    """The active :class:`Profile`: ``name`` if given, else ``$ADAPTERTUNE_PROFILE``, else the automatic choice:
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
    if name == "kit":
        return Profile("kit", "kit_vit_tiny", DEFAULT_TARGET, why)
    backbone, dataset = _paper_setting()
    return Profile("paper", backbone, dataset, why)
