"""Which parameters train, and how many there are.

The first three methods carry the names of the official AdapterTune configs; the last two are the
parameter-efficient methods notebook 08 sets beside AdapterTune:

* ``head_only``     – frozen backbone, train the classification head (a linear probe);
* ``adapter_tune``  – frozen backbone, train the adapters and the head;
* ``full_finetune`` – train everything;
* ``lora``          – frozen backbone, train the LoRA updates (``lora.add_lora``) and the head;
* ``bitfit``        – train the backbone's biases (every ``*.bias``, LayerNorm's included) and the head
  (BitFit, Ben Zaken et al. 2021).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .adapters import adapters_of
from .backbones import head_name
from .lora import lora_layers

METHODS = ("head_only", "adapter_tune", "full_finetune", "lora", "bitfit")


@dataclass(frozen=True)
class ParamCount:
    """Parameter counts of a model. ``fraction_of_full`` = trainable / (backbone + head),
    i.e. relative to what full fine-tuning of the same backbone trains."""

    trainable: int
    total: int
    adapter: int
    head: int
    backbone: int
    lora: int = 0

    @property
    def fraction_of_full(self) -> float:
        return self.trainable / (self.backbone + self.head)

    def __str__(self) -> str:
        return (
            f"trainable {self.trainable:,} of {self.total:,} "
            f"(adapters {self.adapter:,}, " + (f"LoRA {self.lora:,}, " if self.lora else "") +
            f"head {self.head:,}, backbone {self.backbone:,}; "
            f"{100 * self.fraction_of_full:.2f}% of full fine-tuning)"
        )


def _partition(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """``{"adapter", "lora", "head", "bias", "backbone"}`` -> parameters; each parameter in exactly one list
    (``bias``: the backbone's own biases, what BitFit trains; ``backbone``: the rest of it)."""
    adapter_ids = {id(p) for a in adapters_of(model).values() for p in a.parameters()}
    lora_ids = {id(p) for layer in lora_layers(model).values() for p in (layer.lora_A, layer.lora_B)}
    head_ids = {id(p) for p in model.get_submodule(head_name(model)).parameters()}
    groups = {"adapter": [], "lora": [], "head": [], "bias": [], "backbone": []}
    for name, p in model.named_parameters():
        group = ("adapter" if id(p) in adapter_ids else "lora" if id(p) in lora_ids else "head" if id(p) in head_ids
                 else "bias" if name.endswith("bias") else "backbone")
        groups[group].append(p)
    return groups


def count_parameters(model: nn.Module) -> ParamCount:
    """Count trainable, total, adapter, LoRA, head and backbone parameters of ``model``."""
    g = {k: sum(p.numel() for p in ps) for k, ps in _partition(model).items()}
    return ParamCount(
        trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        total=sum(p.numel() for p in model.parameters()),
        adapter=g["adapter"],
        head=g["head"],
        backbone=g["backbone"] + g["bias"],
        lora=g["lora"],
    )


def set_trainable(model: nn.Module, method: str) -> nn.Module:
    """Set ``requires_grad`` for ``method`` (one of :data:`METHODS`) and return the model.

    ``adapter_tune`` needs adapters (``add_adapters`` first), ``lora`` LoRA layers (``add_lora`` first).
    ``full_finetune`` trains every parameter, adapters and LoRA included if there are any.
    """
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}: choose one of {', '.join(METHODS)}.")
    g = _partition(model)
    if method == "adapter_tune" and not g["adapter"]:
        raise ValueError("method 'adapter_tune' needs adapters: call add_adapters(model, rank=...) first.")
    if method == "lora" and not g["lora"]:
        raise ValueError("method 'lora' needs LoRA layers: call add_lora(model, rank=...) first.")
    train = {
        "head_only": g["head"],
        "adapter_tune": g["head"] + g["adapter"],
        "lora": g["head"] + g["lora"],
        "bitfit": g["head"] + g["bias"],
        "full_finetune": [p for ps in g.values() for p in ps],
    }[method]
    train_ids = {id(p) for p in train}
    for p in model.parameters():
        p.requires_grad_(id(p) in train_ids)
    return model
