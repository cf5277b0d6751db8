"""Residual bottleneck adapters and their insertion into a timm Vision Transformer.

An adapter is ``A(h) = W_up · GELU(W_down · h + b_down) + b_up`` used residually,
``h' = h + scale · A(h)``. With the AdapterTune ("zero") initialisation ``W_up = 0`` and
``b_up = 0``, so every adapter adds an exact zero and the adapted network computes the
pretrained function bit for bit until the first optimiser step.

Adapters attach as child modules of the module they modify (``blocks.3.adapter``,
``blocks.3.attn.adapter``, ...) and run through a forward hook on that module, so the
backbone's own ``state_dict`` keys never change. ``print(model)`` shows where each one acts
(``Adapter(post_mlp: mlp(x) + A(mlp(x)), ...)``), ``model.adapter_config`` is an
:class:`AdapterConfig`, and :func:`remove_adapters` takes them out again, leaving the backbone as it
was. Saving and loading them: ``checkpoints``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence, Union

import torch
from torch import nn

from .backbones import model_width

INITS = ("zero", "small", "random")
PLACEMENTS = ("post_block", "post_attn", "post_mlp", "houlsby", "parallel")
BlockSpec = Union[str, Sequence[int]]

# placement -> [(sub-module of the block that gets the adapter, hook kind)]
# "" means the block itself. A "residual" hook adds A(output) to the module's output; a
# "parallel" hook adds A(input) to the output (AdaptFormer: beside the MLP, same input).
SITES = {
    "post_block": [("", "residual")],
    "post_attn": [("attn", "residual")],
    "post_mlp": [("mlp", "residual")],
    "houlsby": [("attn", "residual"), ("mlp", "residual")],
    "parallel": [("mlp", "parallel")],
}


class Adapter(nn.Module):
    """Bottleneck ``dim -> rank -> dim`` with GELU; returns ``scale * A(h)``, the residual update.

    Args:
        dim: width ``d`` of the residual stream.
        rank: bottleneck width ``r``; parameters ``2*d*r + r + d``.
        init: ``"zero"`` (AdapterTune: Xavier ``W_down``, zero ``W_up`` and biases),
            ``"small"`` (``W_up ~ N(0, 1e-4^2)``, ``b_up = 0``: near-identity; the official code also draws ``b_up``
            from ``N(0, 1e-4^2)``, the kit keeps it 0 so that the inits differ in ``W_up`` only) or ``"random"``
            (Xavier ``W_up``: perturbs the pretrained features from the first forward).
        scale: multiplier ``s`` on the adapter output.

    Shapes: ``h`` is ``(..., dim)``; the output has the same shape.
    """

    def __init__(self, dim: int, rank: int, init: str = "zero", scale: float = 1.0):
        super().__init__()
        _check_rank(rank)
        _check_positive_int("dim", dim)
        _check_init(init)
        self.dim, self.rank, self.init, self.scale = dim, rank, init, float(scale)
        self.site = ""  # where add_adapters put it and what it computes there, e.g. "post_mlp: mlp(x) + A(mlp(x))"
        self.hook = None  # the handle of the forward hook that applies it (add_adapters)
        self.down = nn.Linear(dim, rank)
        self.act = nn.GELU()
        self.up = nn.Linear(rank, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw the weights. ``W_down`` comes from torch's global generator; a non-zero ``W_up`` comes
        from a private generator seeded from the global one *without advancing it*. So for one seed
        every init gets the same ``W_down`` in every adapter of a model, and an init comparison
        differs in ``W_up`` only."""
        nn.init.xavier_uniform_(self.down.weight)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.bias)
        with torch.no_grad():
            if self.init == "zero":
                self.up.weight.zero_()
            elif self.init == "small":
                self.up.weight.normal_(0.0, 1e-4, generator=_side_generator())
            else:  # "random": Xavier-uniform, bound sqrt(6 / (fan_in + fan_out))
                bound = (6.0 / (self.dim + self.rank)) ** 0.5
                self.up.weight.uniform_(-bound, bound, generator=_side_generator())

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.scale * self.up(self.act(self.down(h)))

    def extra_repr(self) -> str:
        where = f"{self.site}, " if self.site else ""
        return f"{where}dim={self.dim}, rank={self.rank}, init={self.init!r}, scale={self.scale}"


def _side_generator() -> torch.Generator:
    """A CPU generator seeded by a hash of the global generator's state, leaving that state as it was."""
    state = torch.random.get_rng_state().numpy().tobytes()
    return torch.Generator().manual_seed(int.from_bytes(hashlib.sha256(state).digest()[:8], "little") >> 1)


def num_adapter_params(dim: int, rank: int) -> int:
    """Parameters in one adapter: ``2*d*r + r + d``."""
    return 2 * dim * rank + rank + dim


# ----------------------------------------------------------------------------- blocks
def every_k(k: int) -> str:
    """Block selection: blocks 0, k, 2k, ... (as a string so configs stay serialisable)."""
    return f"every:{k}"


def first_k(k: int) -> str:
    """Block selection: the first ``k`` blocks."""
    return f"first:{k}"


def last_k(k: int) -> str:
    """Block selection: the last ``k`` blocks."""
    return f"last:{k}"


def resolve_blocks(blocks: BlockSpec, depth: int) -> list[int]:
    """Turn a block selection into a sorted list of block indices for a model of ``depth`` blocks.

    ``blocks`` is ``"all"``, ``"every:k"``, ``"first:k"``, ``"last:k"`` (see :func:`every_k`,
    :func:`first_k`, :func:`last_k`) or a sequence of indices (negative ones count from the end).
    """
    if isinstance(blocks, str):
        if blocks == "all":
            return list(range(depth))
        kind, _, k = blocks.partition(":")
        if kind in ("every", "first", "last") and k.isdigit() and int(k) > 0:
            k = int(k)
            if kind == "every":
                return list(range(0, depth, k))
            if k > depth:
                raise ValueError(f"blocks={blocks!r} asks for {k} blocks but the model has {depth}; use k <= {depth}.")
            return list(range(k)) if kind == "first" else list(range(depth - k, depth))
        raise ValueError(
            f"Unknown block selection {blocks!r}: use 'all', every_k(k), first_k(k), last_k(k) "
            "(e.g. 'last:4') or a list of block indices."
        )
    if isinstance(blocks, (int, bool)) or not all(isinstance(i, int) and not isinstance(i, bool) for i in blocks):
        raise TypeError(f"blocks must be 'all', a selection string or a list of ints, not {blocks!r}.")
    out = set()
    for i in blocks:
        if not -depth <= i < depth:
            raise ValueError(f"Block index {i} is out of range: the model has {depth} blocks (indices 0..{depth - 1}).")
        out.add(i % depth)
    if not out:
        raise ValueError("blocks is an empty list: name at least one block index.")
    return sorted(out)


# ----------------------------------------------------------------------------- hooks
def residual_hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    """What a residual adapter does to its module's output ``(B, T, D)``: ``output + adapter(output)``."""
    return output + module.adapter(output)


def _parallel_hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    return output + module.adapter(args[0])


_HOOKS = {"residual": residual_hook, "parallel": _parallel_hook}


def _formula(sub: str, kind: str) -> str:
    """What an adapter at ``sub`` (``""``: the block) computes, for its ``repr``: ``"mlp(x) + A(mlp(x))"``."""
    f = f"{sub or 'block'}(x)"
    return f"{f} + A({f})" if kind == "residual" else f"{f} + A(x)"


@dataclass(frozen=True)
class AdapterConfig:
    """How :func:`add_adapters` set up a model's adapters (``model.adapter_config``); saved with them."""

    rank: int
    placement: str
    blocks: tuple[int, ...]
    init: str
    scale: float
    dim: int

    def to_dict(self) -> dict:
        return {"rank": self.rank, "placement": self.placement, "blocks": list(self.blocks), "init": self.init,
                "scale": self.scale, "dim": self.dim}

    @classmethod
    def from_dict(cls, d: dict) -> "AdapterConfig":
        return cls(d["rank"], d["placement"], tuple(d["blocks"]), d["init"], float(d["scale"]), d["dim"])


def add_adapters(
    model: nn.Module,
    rank: int = 16,
    placement: str = "post_block",
    blocks: BlockSpec = "all",
    init: str = "zero",
    scale: float = 1.0,
) -> nn.Module:
    """Attach adapters to a timm ViT in place and return it.

    Args:
        model: a timm Vision Transformer (anything with ``.blocks`` whose blocks have ``.attn`` and ``.mlp``).
        rank: bottleneck width ``r`` (positive int).
        placement: ``"post_block"`` (AdapterTune, and Adapter+'s "Post": on the residual stream after the block),
            ``"post_attn"`` / ``"post_mlp"`` (on the sub-layer output before its residual add; ``post_mlp`` is
            Pfeiffer's), ``"houlsby"`` (both: Houlsby's) or ``"parallel"`` (beside the MLP, fed the MLP's input:
            AdaptFormer's position).
        blocks: ``"all"``, ``every_k(k)``, ``first_k(k)``, ``last_k(k)`` or a list of block indices.
        init: ``"zero"``, ``"small"`` or ``"random"`` (see :class:`Adapter`).
        scale: output multiplier of every adapter.

    Everything is checked before the model is touched, so a bad argument leaves it unmodified.
    The backbone's parameter names are unchanged; adapters appear as ``...adapter.down.weight`` etc.
    """
    _check_rank(rank)
    _check_init(init)
    if placement not in PLACEMENTS:
        raise ValueError(f"Unknown placement {placement!r}: choose one of {', '.join(PLACEMENTS)}.")
    if not isinstance(getattr(model, "blocks", None), nn.Sequential | nn.ModuleList):
        raise TypeError(
            f"{type(model).__name__} has no `.blocks` of transformer blocks: add_adapters expects a timm "
            "VisionTransformer (e.g. load_backbone('kit_vit_tiny', ...) or timm.create_model('vit_small_patch16_224'))."
        )
    if adapters_of(model):
        raise ValueError(
            "This model already has adapters. Adding them twice would stack two adapters per site: "
            "start from a fresh backbone (load_backbone(...)) instead."
        )
    dim = model_width(model)
    indices = resolve_blocks(blocks, len(model.blocks))
    sites = []
    for i in indices:
        for sub, kind in SITES[placement]:
            target = model.blocks[i].get_submodule(sub) if sub else model.blocks[i]
            if sub and not isinstance(target, nn.Module):
                raise TypeError(f"Block {i} has no `.{sub}` module for placement {placement!r}.")
            sites.append((target, sub, kind))

    for target, sub, kind in sites:  # all checks passed: now modify
        target.adapter = Adapter(dim, rank, init=init, scale=scale)
        target.adapter.site = f"{placement}: {_formula(sub, kind)}"
        target.adapter.hook = target.register_forward_hook(_HOOKS[kind])  # its handle: remove_adapters undoes it
    model.adapter_config = AdapterConfig(rank, placement, tuple(indices), init, float(scale), dim)
    return model


def remove_adapters(model: nn.Module) -> nn.Module:
    """Take every adapter out of ``model`` (in place) and return it: their hooks removed and their modules
    deleted, so the backbone computes its own function bit for bit again and its ``state_dict`` has exactly
    its own keys. A model without adapters comes back unchanged."""
    for name in list(adapters_of(model)):
        owner = model.get_submodule(name.rpartition(".")[0])
        owner.adapter.hook.remove()
        del owner.adapter
    if hasattr(model, "adapter_config"):
        del model.adapter_config
    return model


def adapters_of(model: nn.Module) -> dict[str, Adapter]:
    """All adapters in ``model`` by their module name, e.g. ``{'blocks.0.adapter': Adapter(...)}``."""
    return {name: m for name, m in model.named_modules() if isinstance(m, Adapter)}


def _check_rank(rank: object) -> None:
    if isinstance(rank, bool) or not isinstance(rank, int):
        raise TypeError(f"rank must be a positive int (e.g. 16), not {rank!r} of type {type(rank).__name__}.")
    if rank <= 0:
        raise ValueError(f"rank must be a positive int (e.g. 16), not {rank}.")


def _check_positive_int(what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{what} must be a positive int, not {value!r}.")


def _check_init(init: str) -> None:
    if init not in INITS:
        raise ValueError(f"Unknown init {init!r}: choose one of {', '.join(INITS)}.")

