"""Training recipes: the one place ``fit``, ``RunConfig``, the CLI, the notebooks and the benchmarks read them.

A :class:`Recipe` is everything about *how* a run trains (optimiser, schedule, budget, augmentation);
what it trains (backbone, dataset, method, adapters) lives in ``experiments.RunConfig``, and how
fast it runs (caching, checkpointing, compiling) in ``train.Speedups``, which never changes a result.

``OFFICIAL_RECIPE`` is the official AdapterTune recipe for timm ViTs at 224 px (its configs/base.yaml:
AdamW lr 1e-3, weight decay 0.05, cosine with 5 warm-up epochs of 50, gradient clipping 1.0, batch 128,
and its training transform: random resized crop + horizontal flip); ``TORCHVISION_RECIPES`` applies it
per dataset. ``Recipe()`` has the official optimiser settings, schedule and budget at batch 64 without
augmentation, the base the kit recipes change. One departure from the official code, stated wherever the recipe is
described: ``fit`` decays tensors of two or more dimensions only (not biases and LayerNorm weights), where the
official code's AdamW decays every trainable tensor (``train.make_optimizer``; a test pins it). On the small kit
backbone and small datasets the learning rates were chosen on validation (each method's record in ``methods``,
benchmarks/kit_lr.py): the linear probe wants a larger step, full fine-tuning a smaller one.

The course default target is ``left_digit`` (see ``adaptertune_lite.targets``): a task where the
frozen features are not enough, so head-only, AdapterTune and full fine-tuning differ.
``mnist5k`` and ``digits`` are the "easy transfer" contrast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from .methods import METHODS, method

AUGMENTATIONS = ("crop_flip", "crop")  # see transforms.augmentation


@dataclass(frozen=True)
class Recipe:
    """How one run trains. Frozen, so it can be part of a run's key. ``Recipe()``: the official optimiser settings,
    schedule and epochs, at batch 64 without augmentation (``OFFICIAL_RECIPE`` is the whole official recipe).

    Args:
        lr: AdamW's peak learning rate.
        weight_decay: AdamW's decoupled weight decay, on tensors of two or more dimensions only (not biases and
            LayerNorm weights): a departure from the official code, which decays every trainable tensor.
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

# Per method on the kit backbone: the rate in the method's record (methods.METHODS, chosen on validation by
# benchmarks/kit_lr.py), the rest of each recipe Recipe()'s, the epochs the budget's (BUDGETS) x the method's factor.
KIT_RECIPES: dict[str, Recipe] = {name: Recipe(lr=m.kit_lr) for name, m in METHODS.items()}

# Head-only trains on cached features (nothing to recompute between epochs: a few milliseconds per epoch on the kit)
# and a linear probe converges slowly, so in every profile it gets 40x the budget's epochs (its record's epochs_factor) (FAST left_digit: 120
# epochs, 3 s on a 2-core CPU). Notebooks 04 and 07 show its validation accuracy at a quarter of them against all of
# them, so "converged" is measured, not assumed (the kit report's head-only rose from 63.6 % at 4 epochs to 79.2 % at
# 50 on left_digit).
HEAD_ONLY_EPOCHS_FACTOR = METHODS["head_only"].epochs_factor

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


# Timm ViTs on torchvision datasets (the paper profile): FAST (a CPU, or CI with a tiny local dataset) 32 images for 2
# epochs, only to show the code path runs; full (a GPU) the whole train split for 10 epochs, a kit choice sized for a
# Colab T4 (notebook 07 estimates what a run costs there from counted FLOPs); the official recipe trains 50.
TORCHVISION_BUDGET = {"fast": {"n_train": 32, "epochs": 2}, "full": {"n_train": None, "epochs": 10}}


def budget(dataset: str, fast: bool) -> dict:
    """``{"n_train", "epochs"}`` of ``dataset``'s FAST (``fast=True``) or full budget: the kit's on a kit dataset
    (:data:`BUDGETS`), :data:`TORCHVISION_BUDGET` on a torchvision one. ``fast`` is always given: nothing here reads
    the environment or the hardware (``course.profiles.profile`` decides FAST mode, once)."""
    if not isinstance(fast, bool):
        raise TypeError(f"fast must be True (the FAST budget) or False (the full one), not {fast!r}.")
    return (BUDGETS.get(dataset) or TORCHVISION_BUDGET)["fast" if fast else "full"]


def recipe_for(method_name: str, dataset: str = DEFAULT_TARGET, *, fast: bool) -> Recipe:
    """The recipe a run of ``method_name`` on ``dataset`` gets when none is set: on a kit dataset the kit's (the
    method's measured rate), on a torchvision dataset the official one (:data:`TORCHVISION_RECIPES`); at the budget's
    epochs times the method's ``epochs_factor``. A method that trains on cached features (head-only) trains without
    augmentation: augmented images change every epoch, so nothing could be cached."""
    m = method(method_name)
    base = KIT_RECIPES[m.name] if dataset in BUDGETS else TORCHVISION_RECIPES.get(dataset, OFFICIAL_RECIPE)
    return base.replace(epochs=budget(dataset, fast)["epochs"] * m.epochs_factor,
                        augment=None if m.caches == "features" else base.augment)


def kit_recipe(method_name: str, dataset: str = DEFAULT_TARGET, *, fast: bool) -> Recipe:
    """The kit's :class:`Recipe` for ``method_name`` on kit dataset ``dataset`` at its FAST or full budget."""
    if dataset not in BUDGETS:
        raise ValueError(f"No kit recipe for dataset {dataset!r}: choose one of {', '.join(BUDGETS)}.")
    return recipe_for(method_name, dataset, fast=fast)


def n_train_for(dataset: str = DEFAULT_TARGET, *, fast: bool) -> int | None:
    """Training images a run on ``dataset`` uses by default at its FAST or full budget (``None``: all of them)."""
    return budget(dataset, fast)["n_train"]



def kit_n_train(dataset: str = DEFAULT_TARGET, *, fast: bool) -> int | None:
    """:func:`n_train_for` on a kit dataset (a clear error on any other)."""
    if dataset not in BUDGETS:
        raise ValueError(f"No kit budget for dataset {dataset!r}: choose one of {', '.join(BUDGETS)}.")
    return n_train_for(dataset, fast=fast)
