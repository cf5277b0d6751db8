"""Which parameters train, and how many there are. What each method trains is its record in
:mod:`~adaptertune_lite.methods`; here the model's parameters are sorted into those groups."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .adapters import adapters_of
from .backbones import head_name
from .lora import lora_layers
from .methods import GROUPS, method


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
    groups = {name: [] for name in GROUPS}
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


def set_trainable(model: nn.Module, method_name: str) -> nn.Module:
    """Set ``requires_grad`` for ``method_name`` (one of :data:`~adaptertune_lite.methods.METHODS`): its record's
    groups train, every other parameter is frozen. Returns the model.

    ``adapter_tune`` needs adapters (``add_adapters`` first), ``lora`` LoRA layers (``add_lora`` first).
    ``full_finetune`` trains every parameter, adapters and LoRA included if there are any.
    """
    m = method(method_name)
    g = _partition(model)
    needs = {"adapters": ("adapter", "add_adapters(model, rank=...)"), "lora": ("lora", "add_lora(model, rank=...)")}.get(m.adds)
    if needs and not g[needs[0]]:
        raise ValueError(f"method {m.name!r} needs {m.adds}: call {needs[1]} first.")
    train_ids = {id(p) for group in m.trains for p in g[group]}
    for p in model.parameters():
        p.requires_grad_(id(p) in train_ids)
    return model
