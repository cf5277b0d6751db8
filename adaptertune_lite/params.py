"""Which parameters train, and how many there are.

The three methods carry the names of the official AdapterTune configs:

* ``head_only``     – frozen backbone, train the classification head (a linear probe);
* ``adapter_tune``  – frozen backbone, train the adapters and the head;
* ``full_finetune`` – train everything.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .adapters import adapters_of
from .backbones import head_name

METHODS = ("head_only", "adapter_tune", "full_finetune")


@dataclass(frozen=True)
class ParamCount:
    """Parameter counts of a model. ``fraction_of_full`` = trainable / (backbone + head),
    i.e. relative to what full fine-tuning of the same backbone trains."""

    trainable: int
    total: int
    adapter: int
    head: int
    backbone: int

    @property
    def fraction_of_full(self) -> float:
        return self.trainable / (self.backbone + self.head)

    def __str__(self) -> str:
        return (
            f"trainable {self.trainable:,} of {self.total:,} "
            f"(adapters {self.adapter:,}, head {self.head:,}, backbone {self.backbone:,}; "
            f"{100 * self.fraction_of_full:.2f}% of full fine-tuning)"
        )


def _partition(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter], list[nn.Parameter]]:
    """(adapter params, head params, backbone params); each parameter in exactly one list."""
    adapter_ids = {id(p) for a in adapters_of(model).values() for p in a.parameters()}
    head = model.get_submodule(head_name(model))
    head_ids = {id(p) for p in head.parameters()}
    adapters, heads, backbone = [], [], []
    for p in model.parameters():
        (adapters if id(p) in adapter_ids else heads if id(p) in head_ids else backbone).append(p)
    return adapters, heads, backbone


def count_parameters(model: nn.Module) -> ParamCount:
    """Count trainable, total, adapter, head and backbone parameters of ``model``."""
    adapters, heads, backbone = _partition(model)
    n = lambda ps: sum(p.numel() for p in ps)  # noqa: E731
    return ParamCount(
        trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        total=n(model.parameters()),
        adapter=n(adapters),
        head=n(heads),
        backbone=n(backbone),
    )


def set_trainable(model: nn.Module, method: str) -> nn.Module:
    """Set ``requires_grad`` for ``method`` (one of :data:`METHODS`) and return the model.

    ``adapter_tune`` needs adapters (``add_adapters`` first). ``full_finetune`` trains every
    parameter, adapters included if there are any.
    """
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}: choose one of {', '.join(METHODS)}.")
    adapters, heads, backbone = _partition(model)
    if method == "adapter_tune" and not adapters:
        raise ValueError("method 'adapter_tune' needs adapters: call add_adapters(model, rank=...) first.")
    train = {
        "head_only": heads,
        "adapter_tune": heads + adapters,
        "full_finetune": heads + adapters + backbone,
    }[method]
    train_ids = {id(p) for p in train}
    for p in model.parameters():
        p.requires_grad_(id(p) in train_ids)
    return model
