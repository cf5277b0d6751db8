"""The methods, one record each: what a method adds to the backbone, what it trains, which settings name its runs,
its measured kit learning rate, and whether the frozen part of its network can be computed once.

Every place that depends on the method reads its record here (``params.set_trainable``, ``recipes``, the
engine's shortcuts, the course's run configs), so adding a method is adding a record.

The first three carry the names of the official AdapterTune configs; the last two are the parameter-efficient
methods notebook 08 sets beside AdapterTune:

* ``head_only``     – frozen backbone, train the classification head (a linear probe);
* ``adapter_tune``  – frozen backbone, train the adapters (``add_adapters``) and the head;
* ``full_finetune`` – train everything;
* ``lora``          – frozen backbone, train the LoRA updates (``lora.add_lora``) and the head;
* ``bitfit``        – train the backbone's biases (every ``*.bias``, LayerNorm's included) and the head
  (BitFit, Ben Zaken et al. 2021).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from . import adapters, lora

GROUPS = ("head", "adapter", "lora", "bias", "backbone")  # every parameter is in one (params.groups)


@dataclass(frozen=True)
class Method:
    """One fine-tuning method.

    Args:
        name: the method's name in configs and results.
        trains: the parameter groups it trains (of :data:`GROUPS`); every other parameter is frozen.
        adds: what must be attached to the backbone first: ``"adapters"``, ``"lora"`` or ``None``.
        settings: the run-config fields that change its result beyond the common ones (they enter a run's key).
        kit_lr: AdamW's rate on the kit backbone, chosen on validation by ``benchmarks/kit_lr.py``.
        caches: what the engine may compute once because it never trains: ``"features"`` (the backbone's pooled
            features: train the head on them), ``"prefix"`` (the frozen blocks before the first adapter) or ``None``.
        epochs_factor: how many times the budget's epochs it trains (a linear probe on cached features converges
            slowly and costs milliseconds per epoch).
    """

    name: str
    trains: tuple[str, ...]
    adds: str | None = None
    settings: tuple[str, ...] = ()
    kit_lr: float = 1e-3
    caches: str | None = None
    epochs_factor: int = 1

    def attach(self, model: nn.Module, **settings) -> nn.Module:
        """Add what this method trains besides the backbone's own weights (its adapters or LoRA updates) with
        ``settings`` (``rank``, ``placement``, ...; those of other methods are ignored). Returns ``model``."""
        mine = {k: v for k, v in settings.items() if k in self.settings}
        if self.adds == "adapters":
            adapters.add_adapters(model, **mine)
        elif self.adds == "lora":
            lora.add_lora(model, rank=mine["rank"], alpha=mine.get("lora_alpha"), scaling=mine.get("lora_scaling", "alpha/r"))
        return model


# The kit rates (and the grids they were chosen from) are in benchmarks/results/kit_lr.md: left_digit at the FAST
# budget (1000 images, 3 epochs), the best mean validation accuracy over 3 seeds, changed only when the best beats the
# old rate by a paired 95 % interval (stats.paired_difference), the course's own bar for calling a difference.
METHODS: dict[str, Method] = {
    # head on cached features; 1e-2 / 3e-2 / 1e-1: 72.2 / 73.1 / 73.3 %, flat once converged
    "head_only": Method("head_only", trains=("head",), kit_lr=3e-2, caches="features", epochs_factor=40),
    # adapters (r=16) + head; 2e-3 / 5e-3 / 1e-2 / 2e-2: 73.1 / 83.3 / 87.4 / 85.7 %
    "adapter_tune": Method("adapter_tune", trains=("head", "adapter"), adds="adapters", kit_lr=1e-2, caches="prefix",
                           settings=("rank", "placement", "blocks", "init", "scale")),
    # every weight; 2e-4 / 5e-4 / 1e-3 / 2e-3: 84.0 / 90.3 / 90.6 / 81.5 %
    "full_finetune": Method("full_finetune", trains=GROUPS, kit_lr=1e-3),
    # LoRA (r=2, s=1) + head; 5e-3 / 1e-2 / 2e-2 / 4e-2: 82.6 / 87.6 / 87.8 / 9.1 % (diverges)
    "lora": Method("lora", trains=("head", "lora"), adds="lora", kit_lr=1e-2, settings=("rank", "lora_alpha", "lora_scaling")),
    # biases + head; 1e-2 / 2e-2 / 5e-2 / 1e-1: 72.0 / 73.6 / 43.5 / 9.8 %
    "bitfit": Method("bitfit", trains=("head", "bias"), kit_lr=2e-2),
}


def method(name: str) -> Method:
    """The record of method ``name``, or a clear error naming the methods there are."""
    if name not in METHODS:
        raise ValueError(f"Unknown method {name!r}: choose one of {', '.join(METHODS)}.")
    return METHODS[name]
