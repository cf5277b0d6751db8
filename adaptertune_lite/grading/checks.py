"""The course's graded tasks, one block per exercise notebook (``exercises/src/exNN_*.py``).

Every check builds fresh random inputs and compares what the student's object returns with the kit's
own reference code (``adapters``, ``params``, ``drift``, ``experiments``), so pasted values cannot pass.
Hints say what was expected, what was observed, and where to look.

A check talks to the student's objects only through their handles (:class:`.tasks.Student`):
``f(*args)`` for a function of plain inputs, ``Obj.probe("exNN.name", *args)`` for a probe below that
builds the models the task needs from a seed, calls the student's code and returns plain data. The
models are built by the same functions here, from the same seed, for the reference.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable

import torch
import torch.nn.functional as F
from scipy import stats as scipy_stats
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn

from .. import adapters as ad
from .. import drift, lora, params, recipes, stats
from ..course import experiments
from ..elbow import robust_elbow
from .tasks import RNG_LOCK, Checker, probe, task


def _tiny_vit(seed: int, dim: int = 24, depth: int = 3, drop_path_rate: float = 0.0) -> VisionTransformer:
    with RNG_LOCK:
        torch.manual_seed(seed)
        return VisionTransformer(img_size=16, patch_size=8, embed_dim=dim, depth=depth, num_heads=2,
                                 num_classes=5, drop_path_rate=drop_path_rate)


def _with_adapters(model: nn.Module, seed: int, **kwargs) -> nn.Module:
    """``add_adapters(model, **kwargs)`` with the global generator seeded (random inits draw from it)."""
    with RNG_LOCK:
        torch.manual_seed(seed)
        return ad.add_adapters(model, **kwargs)


def _by_shape(tensors: list, d: int, r: int) -> dict[str, torch.Tensor]:
    """The adapter's four parameters, found by their shapes (students name their layers freely)."""
    want = {(r, d): "W_down", (r,): "b_down", (d, r): "W_up", (d,): "b_up"}
    found = {}
    for p in tensors:
        name = want.get(tuple(p.shape))
        if name is None or name in found:
            raise AssertionError(f"unexpected parameter of shape {tuple(p.shape)}: an adapter holds W_down (r, d), "
                                 "b_down (r,), W_up (d, r), b_up (d,) — e.g. nn.Linear(d, r) and nn.Linear(r, d)")
        found[name] = p
    missing = set(want.values()) - set(found)
    if missing:
        raise AssertionError(f"no parameter for {', '.join(sorted(missing))}")
    return found


def _tensors(got, what: str) -> list[torch.Tensor]:
    if not isinstance(got, list) or not all(isinstance(t, torch.Tensor) for t in got):
        raise TypeError(f"{what}: expected a list of tensors")
    return got


def _answer(got, *keys: str) -> list:
    """The fields of a probe's answer (a dict), refusing anything else."""
    if not isinstance(got, dict) or not set(keys) <= set(got):
        raise TypeError(f"malformed answer: expected the fields {', '.join(keys)}")
    return [got[k] for k in keys]


# ----------------------------------------------------------------------------- ex01: build an adapter
def _xavier(w: torch.Tensor, d: int, r: int) -> tuple[bool, str]:
    """Whether ``w`` (r, d) looks drawn from Xavier-uniform, and a hint that names what it looks like instead.

    The bound ``sqrt(6 / (d + r))`` and the std ``bound / sqrt(3)`` separate it from nn.Linear's default
    (Kaiming-uniform, bound ``1 / sqrt(d)``) and from a zero matrix every time; Xavier-normal (the same std,
    no bound) has ``r·d >= 192`` chances to cross the bound, and crosses it with probability above 1 - 1e-7."""
    bound, top, std = math.sqrt(6 / (d + r)), float(w.abs().max()), float(w.double().std())
    ok = top <= bound + 1e-6 and abs(std - bound / math.sqrt(3)) < 0.25 * bound / math.sqrt(3)
    kaiming = 1 / math.sqrt(d)
    looks = ("this looks like W_down left at zero" if top == 0 else
             "this looks like nn.Linear's default init (Kaiming-uniform, bound 1/√d)" if top <= kaiming + 1e-6 else
             "this looks like Xavier-normal (no bound): the course uses the uniform one" if top > bound + 1e-6 and
             abs(std - bound / math.sqrt(3)) < 0.25 * bound / math.sqrt(3) else "")
    shown = (f"expected values in ±{bound:.3f} with std ≈ {bound / math.sqrt(3):.3f}; observed max |w| = {top:.3f}, "
             f"std {std:.3f}")
    return ok, f"{looks + ': ' if looks else ''}{shown}. nn.init.xavier_uniform_(W_down)."


def _adapter_forward(h: torch.Tensor, ps: dict, act=F.gelu) -> torch.Tensor:
    return F.linear(act(F.linear(h, ps["W_down"], ps["b_down"])), ps["W_up"], ps["b_up"])


@probe("ex01.adapter")
def _probe_adapter(Adapter, d: int, r: int, h: torch.Tensor, seed: int) -> dict:
    """Build ``Adapter(d, r)``; its output on ``h`` at init, its parameters, and its output once every
    parameter (in ``parameters()`` order) holds values drawn from ``seed``."""
    adapter = Adapter(d, r)
    with torch.no_grad():
        out = adapter(h)
        initial = [p.detach().clone() for p in adapter.parameters()]
        g = torch.Generator().manual_seed(seed)
        for p in adapter.parameters():
            p.copy_(torch.randn(*p.shape, generator=g) * 0.3)
        return {"out": out, "params": initial, "forward": adapter(h)}


@task("ex01.adapter", points=4, needs=("Adapter",), title="Adapter: a zero-initialised bottleneck")
def _ex01_adapter(c: Checker, Adapter) -> None:
    d, r = c.randint(48, 97), c.randint(4, 9)  # r·d >= 192: enough weights to tell Xavier-uniform apart
    h, seed = c.randn(3, 5, d), c.randint(0, 2**31)
    out, initial, forward = _answer(Adapter.probe("ex01.adapter", d, r, h, seed), "out", "params", "forward")
    initial = _tensors(initial, "the adapter's parameters")
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"Adapter({d}, {r})(h) returned a {type(out).__name__}, not a tensor")
    c.part("forward keeps the shape (..., d)", 1, tuple(out.shape) == tuple(h.shape),
           f"Adapter({d}, {r}) on h of shape {tuple(h.shape)} returned {tuple(out.shape)}: A(h) maps d -> r -> d.")
    ps = _by_shape(initial, d, r)
    xavier, hint = _xavier(ps["W_down"], d, r)
    zero = tuple(out.shape) == tuple(h.shape) and bool(torch.equal(out, torch.zeros_like(out)))
    residual = tuple(out.shape) == tuple(h.shape) and bool(torch.allclose(out, h))
    c.part("AdapterTune init: exact zero output, Xavier-uniform W_down", 1, zero and xavier,
           "this looks like h + A(h): return A(h) only (the residual add happens where the adapter is inserted). "
           if residual else hint if zero else
           f"at init expected A(h) == 0 exactly; observed max|A(h)| = {float(out.abs().max()):.3g}. "
           "Zero W_up and b_up (nn.init.zeros_), Xavier-uniform W_down.")
    n = sum(p.numel() for p in initial)
    c.part("parameter count 2·d·r + r + d", 1, n == ad.num_adapter_params(d, r),
           f"d={d}, r={r}: expected {ad.num_adapter_params(d, r)} parameters, found {n}.")
    g = torch.Generator().manual_seed(seed)  # the values the probe gave the parameters, in the same order
    ps = _by_shape([torch.randn(*p.shape, generator=g) * 0.3 for p in initial], d, r)
    want = _adapter_forward(h, ps)
    mistakes = {"this looks like the tanh approximation of GELU: use the exact one, F.gelu(x) (nn.GELU())":
                _adapter_forward(h, ps, lambda z: F.gelu(z, approximate="tanh")),
                "this looks like ReLU where GELU belongs": _adapter_forward(h, ps, F.relu),
                "this looks like h + A(h): return A(h) only": h + want}
    c.close("forward computes W_up·GELU(W_down·h + b_down) + b_up", 1, forward, want, atol=1e-5,
            where="Check the order: down-projection, GELU, up-projection; both biases.", mistakes=mistakes)


@task("ex01.param_count", points=1, needs=("adapter_param_count",), title="The parameter count formula")
def _ex01_param_count(c: Checker, adapter_param_count) -> None:
    cases = [(c.randint(8, 1024), c.randint(1, 64)) for _ in range(3)]
    got = [adapter_param_count(d, r) for d, r in cases]
    want = [ad.num_adapter_params(d, r) for d, r in cases]
    mistakes = {"this looks like the two weight matrices without the biases (2·d·r)": [2 * d * r for d, r in cases],
                "this looks like one bias missing (2·d·r + d)": [2 * d * r + d for d, r in cases],
                "this looks like one bias missing (2·d·r + r)": [2 * d * r + r for d, r in cases],
                "this looks like one weight matrix counted (d·r + r + d)": [d * r + r + d for d, r in cases]}
    c.equal("adapter_param_count(d, r) for random d, r", 1, got, want,
            f"for (d, r) = {cases} expected {want}, got {got}: two weight matrices (d·r each) and two biases "
            "(r and d).", mistakes)


def _freeze_model(seed: int) -> nn.Module:
    model = _with_adapters(_tiny_vit(seed), seed, rank=4)
    for p in model.parameters():
        p.requires_grad_(True)  # as a model arrives from timm: everything trainable
    model.head.weight.requires_grad_(False)  # and one head tensor frozen by an earlier experiment
    return model


@probe("ex01.freeze")
def _probe_freeze(freeze_for_adapter_tune, seed: int) -> dict:
    """The names of the parameters that still train in the model handed in, and what the function returned."""
    model = _freeze_model(seed)
    out = freeze_for_adapter_tune(model)
    returned = "the model" if out is model else "None" if out is None else "another object"
    return {"names": [n for n, p in model.named_parameters() if p.requires_grad], "returned": returned}


@task("ex01.freeze", points=2, needs=("freeze_for_adapter_tune",), title="Freeze all but adapters and head")
def _ex01_freeze(c: Checker, freeze_for_adapter_tune) -> None:
    seed = c.randint(0, 2**31)
    names, returned = _answer(freeze_for_adapter_tune.probe("ex01.freeze", seed), "names", "returned")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise TypeError("malformed answer: expected a list of parameter names")
    reference = params.set_trainable(_freeze_model(seed), "adapter_tune")
    want = {n for n, p in reference.named_parameters() if p.requires_grad}
    got = set(names)
    leaked = sorted(got - want)
    copied = "this looks like a copy frozen and the model handed in left as it was: set requires_grad on `model` " \
        "itself. " if returned == "another object" else ""
    c.part("every backbone parameter frozen (in the model handed in)", 1, not leaked,
           f"{copied}{len(leaked)} backbone tensors still train, e.g. {leaked[:2]}: set requires_grad=False on every "
           "parameter first.")
    missed = sorted(want - got)
    c.part("adapters and head trainable, the model returned", 1, not missed and returned == "the model",
           f"{len(missed)} tensors should train but do not, e.g. {missed[:2]}: the head too (model.head), and every "
           f"parameter of every Adapter; the function returned {returned} (expected the model it was given).")


# ----------------------------------------------------------------------------- ex02: insertion and identity
def _block_and_adapter(d: int, r: int, seed: int) -> tuple[Block, ad.Adapter]:
    with RNG_LOCK:
        torch.manual_seed(seed)
        return Block(dim=d, num_heads=2).eval(), ad.Adapter(d, r, init="random")


@probe("ex02.post_mlp")
def _probe_post_mlp(add_post_mlp_adapter, d: int, r: int, seed: int, x: torch.Tensor) -> dict:
    """The block's output before and after the student inserts the adapter, whether the adapter's
    parameters became the block's, its state_dict keys, and its output once the adapter is zeroed."""
    block, adapter = _block_and_adapter(d, r, seed)
    with torch.no_grad():
        plain = block(x)
    add_post_mlp_adapter(block, adapter)
    with torch.no_grad():
        adapted = block(x)
    own = {id(p) for p in block.parameters()}
    registered = all(id(p) in own for p in adapter.parameters())
    keys = list(block.state_dict())
    with torch.no_grad():
        nn.init.zeros_(adapter.up.weight)
        nn.init.zeros_(adapter.up.bias)
        zeroed = block(x)
    return {"plain": plain, "adapted": adapted, "registered": registered, "keys": keys, "zeroed": zeroed}


def _post_mlp_mistakes(block: Block, adapter: ad.Adapter, x: torch.Tensor) -> dict:
    """What the usual wrong insertions compute (the adapter elsewhere in the block, or without its residual)."""
    with torch.no_grad():
        x1 = x + block.ls1(block.attn(block.norm1(x)))
        m = block.mlp(block.norm2(x1))
        out = block(x)
        return {"this looks like the adapter after the whole block (post-block), not after the MLP": out + adapter(out),
                "this looks like m replaced by A(m): the MLP's output becomes m + A(m)": x1 + block.ls2(adapter(m)),
                "this looks like the adapter on the MLP's input (a pre-hook), not its output":
                    x1 + block.ls2(block.mlp(block.norm2(x1)) + adapter(block.norm2(x1)))}


@task("ex02.post_mlp", points=3, needs=("add_post_mlp_adapter",), title="A post-MLP adapter inserted by hand")
def _ex02_post_mlp(c: Checker, add_post_mlp_adapter) -> None:
    d, r, seed = 16, c.randint(2, 6), c.randint(0, 2**31)
    x = c.randn(2, 5, d)
    block, adapter = _block_and_adapter(d, r, seed)
    keys = set(block.state_dict())
    with torch.no_grad():
        x1 = x + block.ls1(block.attn(block.norm1(x)))
        m = block.mlp(block.norm2(x1))
        want = x1 + block.ls2(m + adapter(m))
        plain = block(x)
    got = add_post_mlp_adapter.probe("ex02.post_mlp", d, r, seed, x)
    fields = _answer(got, "plain", "adapted", "registered", "keys", "zeroed")
    their_plain, adapted, registered, their_keys, zeroed = fields
    c.close("block output = x1 + MLP(LN(x1)) + A(MLP(LN(x1)))", 1, adapted, want, atol=1e-5,
            where="The adapter reads the MLP's output and adds to it, before the block's residual add: "
            "a forward hook on block.mlp that returns output + adapter(output).",
            mistakes={"this looks like the block left unchanged (the adapter added to a copy?)": plain,
                      **_post_mlp_mistakes(block, adapter, x)})
    kept = isinstance(their_keys, list) and keys <= {k for k in their_keys if isinstance(k, str)}
    registered = registered is True
    c.part("adapter registered in the block, backbone keys unchanged", 1, registered and kept,
           f"adapter parameters in block.parameters(): {registered}; original state_dict keys kept: {kept}. "
           "Assign it as a child (block.mlp.adapter = adapter) instead of wrapping or replacing block.mlp.")
    same = all(isinstance(t, torch.Tensor) for t in (their_plain, zeroed)) and \
        their_plain.shape == plain.shape and bool(torch.equal(zeroed, their_plain)) and \
        bool((their_plain - plain).abs().max() <= 1e-5)
    c.part("zero-initialised adapter: output bitwise identical", 1, same,
           "with W_up = b_up = 0 the block must compute exactly what it did before (torch.equal).")


def _identity_models(seed: int) -> tuple[nn.Module, nn.Module, nn.Module]:
    """A tiny ViT in train mode with stochastic depth, and copies with zero- and random-initialised adapters."""
    model = _tiny_vit(seed, drop_path_rate=0.2).train()
    zero = _with_adapters(copy.deepcopy(model), seed, rank=4, init="zero").train()
    rand = _with_adapters(copy.deepcopy(model), seed + 1, rank=4, init="random").train()
    return model, zero, rand


@probe("ex02.identity_gap")
def _probe_identity_gap(max_logit_change, seed: int, x: torch.Tensor) -> dict:
    """The gap for zero-initialised adapters, for random ones, and for random ones with the models swapped."""
    model, zero, rand = _identity_models(seed)
    gap = max_logit_change(model, zero, x)
    rand.train(), model.train()  # as they arrive: in train mode
    random_gap = max_logit_change(model, rand, x)
    rand.train(), model.train()
    return {"zero": gap, "random": random_gap, "swapped": max_logit_change(rand, model, x)}


@task("ex02.identity_gap", points=2, needs=("max_logit_change",), title="Measure the change in logits")
def _ex02_identity_gap(c: Checker, max_logit_change) -> None:
    seed, x = c.randint(0, 2**31), c.randn(16, 3, 16, 16)  # 16 images: train mode's drop_path shows every time
    zero_gap, random_gap, swapped = _answer(max_logit_change.probe("ex02.identity_gap", seed, x),
                                            "zero", "random", "swapped")
    gap = float(zero_gap)
    c.part("zero init gives exactly 0.0 (models in eval mode)", 1, gap == 0.0,
           f"observed {gap:.3g}. In train mode drop_path drops blocks at random, so two forwards differ: "
           "call .eval() on both models (and use torch.no_grad()).")
    model, _, rand = _identity_models(seed)
    with torch.no_grad():
        diff = rand.eval()(x) - model.eval()(x)
    want = diff.abs().max()
    mistakes = {"this looks like the signed largest difference: take the absolute value first":
                [float(diff.max()), float((-diff).max())], "this looks like the mean |difference|, not the largest":
                [float(diff.abs().mean())] * 2}
    c.close("random init: max |logit difference|, either order of the models", 1, [float(random_gap), float(swapped)],
            [float(want)] * 2,
            atol=1e-5, where="Return the largest absolute difference between the two models' logits, as a float, "
            "with both models in eval mode.", mistakes=mistakes)


# ----------------------------------------------------------------------------- ex03: gradients at step 0
def _adapter_grads(W_down, b_down, W_up, b_up, h, g, act=F.gelu) -> dict[str, torch.Tensor]:
    """The four gradients by autograd, with ``act`` as the nonlinearity."""
    leaves = [t.clone().requires_grad_(True) for t in (W_down, b_down, W_up, b_up)]
    out = F.linear(act(F.linear(h, leaves[0], leaves[1])), leaves[2], leaves[3])
    return dict(zip(("W_down", "b_down", "W_up", "b_up"), torch.autograd.grad(out, leaves, grad_outputs=g)))


class _NoGeluGrad(torch.autograd.Function):
    """GELU forward, its backward as the identity (the usual slip: GELU'(z) left out) or as Φ(z) only."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, phi_only: bool) -> torch.Tensor:
        ctx.save_for_backward(z)
        ctx.phi_only = phi_only
        return F.gelu(z)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (z,) = ctx.saved_tensors
        return (grad * 0.5 * (1 + torch.erf(z / math.sqrt(2))) if ctx.phi_only else grad), None


def _backprop_mistakes(*tensors: torch.Tensor) -> dict[str, dict]:
    return {"this looks like the tanh approximation of GELU; use the exact Φ(z) + z·φ(z)":
            _adapter_grads(*tensors, act=lambda z: F.gelu(z, approximate="tanh")),
            "this looks like GELU'(z) left out: dz = (g·W_up) ⊙ GELU'(z)":
            _adapter_grads(*tensors, act=lambda z: _NoGeluGrad.apply(z, False)),
            "this looks like GELU'(z) = Φ(z) only: the derivative of z·Φ(z) is Φ(z) + z·φ(z)":
            _adapter_grads(*tensors, act=lambda z: _NoGeluGrad.apply(z, True))}


@task("ex03.backprop", points=3, needs=("adapter_grads",), title="Backpropagate through an adapter by hand")
def _ex03_backprop(c: Checker, adapter_grads) -> None:
    n, d, r = c.randint(3, 9), c.randint(6, 20), c.randint(2, 5)
    W_down, b_down, W_up, b_up = c.randn(r, d), c.randn(r) * 0.1, c.randn(d, r), c.randn(d) * 0.1
    h, g = c.randn(n, d), c.randn(n, d)
    want = _adapter_grads(W_down, b_down, W_up, b_up, h, g)
    mistakes = _backprop_mistakes(W_down, b_down, W_up, b_up, h, g)
    got = adapter_grads(W_down.clone(), b_down.clone(), W_up.clone(), b_up.clone(), h.clone(), g.clone())
    if not isinstance(got, dict):
        raise TypeError("adapter_grads must return a dict with keys W_down, b_down, W_up, b_up, "
                        f"not {type(got).__name__}")
    where = {"W_up": "dL/dW_up = gᵀ·GELU(z), z = h·W_downᵀ + b_down.", "b_up": "dL/db_up sums g over the rows.",
             "W_down": "dL/dW_down = (g·W_up ⊙ GELU'(z))ᵀ·h; GELU'(z) = Φ(z) + z·φ(z).",
             "b_down": "dL/db_down sums g·W_up ⊙ GELU'(z) over the rows."}
    for name in ("W_up", "b_up", "W_down", "b_down"):
        named = {what: grads[name] for what, grads in mistakes.items()}
        named["this looks like a mean over the rows where the gradient sums them"] = want[name] / n
        c.close(f"dL/d{name}", 0.75, got.get(name, float("nan")), want[name], atol=1e-4, where=where[name],
                mistakes=named)


@probe("ex03.init")
def _probe_init(adaptertune_init_, d: int, r: int) -> dict:
    """An adapter whose every parameter holds 7.0, after the student's init: its four tensors."""
    adapter = ad.Adapter(d, r, init="random")
    with torch.no_grad():
        for p in adapter.parameters():
            p.fill_(7.0)
    adaptertune_init_(adapter)
    return {"up.weight": adapter.up.weight, "up.bias": adapter.up.bias, "down.weight": adapter.down.weight,
            "down.bias": adapter.down.bias}


@task("ex03.init", points=2, needs=("adaptertune_init_",), title="AdapterTune's initialisation")
def _ex03_init(c: Checker, adaptertune_init_) -> None:
    d, r = c.randint(48, 97), c.randint(4, 9)  # r·d >= 192: enough weights to tell Xavier-uniform apart
    got = _answer(adaptertune_init_.probe("ex03.init", d, r), "up.weight", "up.bias", "down.bias", "down.weight")
    up_w, up_b, down_b, w = _tensors(got, "the adapter's parameters")
    shapes = [tuple(t.shape) for t in got] == [(d, r), (d,), (r,), (r, d)]
    zero = {name: shapes and bool(torch.equal(t, torch.zeros_like(t)))
            for name, t in (("W_up", up_w), ("b_up", up_b), ("b_down", down_b))}
    c.part("W_up, b_up, b_down exactly zero", 1, all(zero.values()),
           f"not zero: {', '.join(k for k, v in zero.items() if not v)}. nn.init.zeros_ on up.weight, up.bias and "
           "down.bias.")
    xavier, hint = _xavier(w, d, r) if shapes else (False, f"expected W_down of shape {(r, d)}")
    c.part("W_down Xavier-uniform (random, not zero)", 1, xavier,
           hint + " A zero W_down would leave W_up without gradient.")


# ----------------------------------------------------------------------------- ex04: drift
def _cka_mistakes(x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """What the usual slips in linear CKA give on ``x``, ``y``."""
    def cka(x, y, centre=0, square=(2, 1)) -> float:
        x, y = x.double(), y.double()
        if centre is not None:
            x, y = x - x.mean(centre, keepdim=True), y - y.mean(centre, keepdim=True)
        return float((y.T @ x).norm() ** square[0] / ((x.T @ x).norm() * (y.T @ y).norm()) ** square[1])
    return {"this looks like CKA without centring: subtract each column's mean first": cka(x, y, None),
            "this looks like each row (example) centred instead of each column (feature)": cka(x, y, 1),
            "this looks like ‖YᵀX‖_F not squared": cka(x, y, square=(1, 1)),
            "this looks like the denominator's norms squared": cka(x, y, square=(2, 2))}


@task("ex04.cka", points=3, needs=("linear_cka",), title="Linear CKA")
def _ex04_cka(c: Checker, linear_cka) -> None:
    n = c.randint(40, 80)
    x, y = c.randn(n, 8) + 0.3 * c.randn(1, 8), c.randn(n, 12)  # features with (small) means of their own
    y = y + 0.5 * x @ c.randn(8, 12)  # related but not the same
    c.close("value on random features", 1, linear_cka(x, y), drift.linear_cka(x, y), atol=1e-5,
            where="CKA = ‖Yᵀ X‖_F² / (‖Xᵀ X‖_F · ‖Yᵀ Y‖_F) on column-centred X, Y.", mistakes=_cka_mistakes(x, y))
    q, _ = torch.linalg.qr(c.randn(8, 8))
    c.close("invariant to rotation and scaling: CKA(X, 3·X·Q) = 1", 1, linear_cka(x, 3.0 * x @ q), 1.0, atol=1e-5,
            where="Use the Frobenius norms of the cross- and self-covariances exactly as in the formula.")
    shifted = x + 50.0  # a large mean offset, as real features have
    c.close("centres the features first", 1, linear_cka(shifted, y + 20.0), drift.linear_cka(x, y), atol=1e-4,
            where="Subtract each column's mean (X - X.mean(0)) before the products.",
            mistakes=_cka_mistakes(shifted, y + 20.0))


def _cka_models(seed: int) -> tuple[nn.Module, nn.Module]:
    model = _tiny_vit(seed).eval()
    return model, _with_adapters(copy.deepcopy(model), seed + 1, rank=4, init="random").eval()


@probe("ex04.cls_cka")
def _probe_cls_cka(cls_cka_per_block, seed: int, x: torch.Tensor) -> list:
    model, adapted = _cka_models(seed)
    return list(cls_cka_per_block(adapted, model, x))


@task("ex04.cls_cka", points=2, needs=("cls_cka_per_block",), title="CKA of the CLS token after each block")
def _ex04_cls_cka(c: Checker, cls_cka_per_block) -> None:
    seed, x = c.randint(0, 2**31), c.randn(12, 3, 16, 16)
    model, adapted = _cka_models(seed)
    per_block = lambda pick: [drift.linear_cka(pick(a), pick(b))  # noqa: E731
                              for a, b in zip(_streams(adapted, x), _streams(model, x))]
    want = per_block(lambda out: out[:, 0])
    got = cls_cka_per_block.probe("ex04.cls_cka", seed, x)
    if not isinstance(got, list):
        raise TypeError(f"malformed answer: expected a list, got a {type(got).__name__}")
    c.part("one value per block", 0.5, len(got) == len(want),
           f"expected {len(want)} values (one per block), got {len(got)}.")
    mistakes = {"this looks like the mean over tokens: keep the CLS token, [:, 0]": per_block(lambda o: o.mean(1)),
                "this looks like the last token, [:, -1]: the CLS token is the first, [:, 0]":
                per_block(lambda o: o[:, -1]),
                "this looks like every token pooled: keep the CLS token only": per_block(lambda o: o.flatten(0, 1))}
    c.close("values: CKA of the CLS token (index 0) after each block", 1.5,
            got if len(got) == len(want) else [0.0] * len(want),
            want, atol=1e-4, mistakes=mistakes,
            where="Hook each block's output (B, T, D), keep [:, 0] (the CLS token), compare with linear CKA.")


@torch.no_grad()
def _streams(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    hooks = [b.register_forward_hook(lambda m, a, o: out.append(o)) for b in model.blocks]
    try:
        model(x)
    finally:
        for hk in hooks:
            hk.remove()
    return out


# ----------------------------------------------------------------------------- ex05: the rank elbow
RANKS = [1, 2, 4, 8, 16, 32, 64]


def _share_elbow(ranks: list[int], acc: torch.Tensor, share: float) -> int:
    """The kit's rule (notebook 05's summary): the smallest rank whose mean reaches ``share`` of the gain."""
    return robust_elbow(ranks, acc.numpy(), share=share).rank


SEED_0, OF_TOP, ONE_POINT, FIXED = "seed 0", "of top", "1 point", "fixed share"


def _elbow_mistakes(ranks: list[int], acc: torch.Tensor, share: float) -> dict[str, int]:
    """The elbow each usual slip finds, by kind (:data:`SEED_0`, ...)."""
    mean = acc.reshape(len(ranks), -1).mean(1)
    first = lambda ok: next(r for r, m in zip(ranks, mean.tolist()) if ok(m))  # noqa: E731  (the last rank qualifies)
    return {SEED_0: _share_elbow(ranks, acc.reshape(len(ranks), -1)[:, :1], share),
            OF_TOP: first(lambda m: m >= share * float(mean[-1])),
            ONE_POINT: first(lambda m: float(mean[-1]) - m < 0.01), FIXED: _share_elbow(ranks, acc, 0.9)}


def _elbow_named(ranks: list[int], acc: torch.Tensor, share: float) -> dict[str, int]:
    """The mistakes as a check names them to the student."""
    said = {SEED_0: "this looks like seed 0 only: average the seeds (axis 1) first",
            OF_TOP: f"this looks like {share:g} of the largest rank's accuracy; the rule takes {share:g} of the *gain* "
                    "from the smallest rank",
            ONE_POINT: "this looks like the 1-point rule (acc(largest) − acc(r) < 0.01): the rule is a share of the gain",
            FIXED: "this looks like 90 % of the gain whatever share was asked"}
    return {said[k]: v for k, v in _elbow_mistakes(ranks, acc, share).items()}


def _elbow_case(c: Checker, seeds: int, share: float) -> torch.Tensor:
    """A rank curve (``(len(RANKS), seeds)``) on which every mistake that can show with ``seeds`` seeds and this
    ``share`` gives another answer than the rule, and than each other."""
    required = [OF_TOP, ONE_POINT] + ([SEED_0] if seeds > 1 else []) + ([FIXED] if share != 0.9 else [])
    for _ in range(10_000):
        a, b, k = 0.8 + 0.15 * c.uniform(0, 1), c.uniform(0.2, 0.5), c.uniform(0.3, 1.3)
        mean = torch.tensor([a - b * r ** (-k) for r in RANKS], dtype=torch.float64)
        acc = (mean[:, None] + 0.02 * c.randn(len(RANKS), seeds).double()).clamp(0, 1)
        want, wrong = _share_elbow(RANKS, acc, share), _elbow_mistakes(RANKS, acc, share)
        answers = [want] + [wrong[k] for k in required]
        if len(set(answers)) == len(answers):  # each mistake gives an answer of its own: the hint can name it
            return acc
    raise RuntimeError("ex05.elbow: no separating rank curve found; fix the check")


@task("ex05.elbow", points=2, needs=("elbow_rank",), title="The elbow by the stated rule")
def _ex05_elbow(c: Checker, elbow_rank) -> None:
    hint = "the smallest swept r whose mean (over seeds) reaches share × (acc(largest r) − acc(smallest r)) above " \
           "acc(smallest r)."
    for what, seeds, share in (("one seed, share 0.9", 1, 0.9), ("three seeds averaged, share 0.8", 3, 0.8)):
        acc = _elbow_case(c, seeds, share)
        want = _share_elbow(RANKS, acc, share)
        given = acc[:, 0].tolist() if seeds == 1 else acc.tolist()
        got = elbow_rank(RANKS, given, share)
        c.equal(what, 1, got, want, f"expected r = {want}, got {got}: {hint}", _elbow_named(RANKS, acc, share))


def _scale_case(c: Checker) -> tuple[float, int]:
    """``(alpha, r)`` on which α, r/α, α/√r and α // r all differ from α / r."""
    while True:
        alpha, r = float(c.randint(1, 65)), c.randint(2, 65)
        if alpha % r and alpha != r and abs(alpha / r - alpha / math.sqrt(r)) > 1e-3:
            return alpha, r


@task("ex05.lora_scale", points=1, needs=("lora_scaling",), title="LoRA's α/r against AdapterTune's fixed s")
def _ex05_lora_scale(c: Checker, lora_scaling) -> None:
    alpha, r = _scale_case(c)
    mistakes = {"this looks like r / α, upside down": r / alpha, "this looks like α alone: LoRA divides by r": alpha,
                "this looks like rsLoRA's α / √r: the course's LoRA uses α / r": alpha / math.sqrt(r),
                "this looks like integer division α // r": alpha // r}
    c.close(f"lora_scaling(alpha={alpha:g}, r={r})", 1, lora_scaling(alpha, r), alpha / r, atol=1e-9,
            where="LoRA multiplies its update by α / r, so raising r at fixed α shrinks each direction's scale.",
            mistakes=mistakes)


@probe("ex05.configs")
def _probe_configs(rank_sweep_configs, ranks: list, seeds: list) -> list:
    """The key of each config returned (None for anything that is not a RunConfig), called with FAST mode
    switched off, so a config that leaves the budget to the environment shows it."""
    before = os.environ.get("ADAPTERTUNE_FAST")
    os.environ["ADAPTERTUNE_FAST"] = "0"
    try:
        got = list(rank_sweep_configs(ranks, seeds))
    finally:
        if before is None:
            os.environ.pop("ADAPTERTUNE_FAST", None)
        else:
            os.environ["ADAPTERTUNE_FAST"] = before
    return [cfg.key() if isinstance(cfg, experiments.RunConfig) else None for cfg in got]


def _config_keys(ranks: list, seeds: list, method: str = "adapter_tune", fast: bool = True) -> list[str]:
    base = experiments.RunConfig.from_recipe(method, recipes.DEFAULT_TARGET, fast=fast)
    return sorted(cfg.key() for cfg in experiments.grid(base, rank=ranks, seed=seeds))


@task("ex05.configs", points=1, needs=("rank_sweep_configs",), title="A rank sweep as engine configs")
def _ex05_configs(c: Checker, rank_sweep_configs) -> None:
    # seeds without 0 (RunConfig's default), so "the seeds left out" and "the first seed only" differ
    ranks, seeds = sorted({2 ** c.randint(0, 7) for _ in range(3)}), [c.randint(1, 5), c.randint(5, 10)]
    want = _config_keys(ranks, seeds)
    got = rank_sweep_configs.probe("ex05.configs", ranks, seeds)
    if not isinstance(got, list):
        raise TypeError(f"malformed answer: expected a list, got a {type(got).__name__}")
    keys = sorted(got) if all(isinstance(k, str) for k in got) else []
    mistakes = {"this looks like the full budget: pass fast=True": _config_keys(ranks, seeds, fast=False),
                "this looks like LoRA's recipe: the method is 'adapter_tune'": _config_keys(ranks, seeds, "lora"),
                "this looks like the seeds left out: grid(base, rank=..., seed=...)": _config_keys(ranks, [0]),
                "this looks like the first seed only": _config_keys(ranks, seeds[:1])}
    c.equal(f"the {len(want)} FAST AdapterTune configs on the default target", 1, keys, want,
            f"expected {len(want)} RunConfigs (every rank × seed, RunConfig.from_recipe('adapter_tune', "
            f"DEFAULT_TARGET, fast=True)); got {len(got)} of which {len(set(keys) & set(want))} match.", mistakes)


# ----------------------------------------------------------------------------- ex06: placement under a budget
def _budget_cases(c: Checker):
    width, depth = 8 * c.randint(2, 6), c.randint(3, 7)
    blocks = [("all", "all"), ("last:2", "last:2"), ("every:2", "every:2")][c.randint(0, 3)][0]
    return width, depth, blocks


def _count(width: int, depth: int, rank: int, placement: str, blocks: str) -> int:
    """The kit's count: adapters added to a tiny ViT of this width and depth, counted."""
    model = _tiny_vit(0, dim=width, depth=depth)
    return params.count_parameters(_with_adapters(model, 0, rank=rank, placement=placement, blocks=blocks)).adapter


# Each placement meets the block selection that shows its usual slip: "every:2" on an odd depth (not depth // 2),
# "last:2" (not every block), "all" for houlsby (two adapters per block, not one).
COUNT_CASES = (("post_block", "last:2", 0.5), ("post_mlp", "every:2", 0.5), ("houlsby", "all", 1.0))


@task("ex06.count", points=2, needs=("adapter_params",), title="Adapter parameters for a placement")
def _ex06_count(c: Checker, adapter_params) -> None:
    for placement, blocks, pts in COUNT_CASES:
        width, depth, rank = 8 * c.randint(2, 6), 2 * c.randint(1, 4) + 1, 2 ** c.randint(0, 6)
        want = _count(width, depth, rank, placement, blocks)
        one, sites = ad.num_adapter_params(width, rank), len(ad.resolve_blocks(blocks, depth))
        per_block = 2 if placement == "houlsby" else 1
        mistakes = {"this looks like one adapter per block for houlsby (it puts two: after attention and after "
                    "the MLP)": sites * one, "this looks like every block counted, whatever `blocks` says":
                    per_block * depth * one, "this looks like 'every:2' as depth // 2 blocks (block 0, 2, 4, … "
                    "is (depth + 1) // 2 of them)": per_block * (depth // 2) * one,
                    "this looks like the biases left out (2·d·r per adapter)": per_block * sites * 2 * width * rank}
        got = adapter_params(width, depth, rank, placement, blocks)
        c.equal(f"{placement}, blocks={blocks!r}", pts, got, want,
                f"width {width}, depth {depth}, rank {rank}: expected {want}, got {got}. Houlsby puts two adapters "
                "in each chosen block; at.resolve_blocks(blocks, depth) lists the blocks.",
                {k: v for k, v in mistakes.items() if v != want})


def _best_rank_cases(c: Checker, width: int, depth: int, blocks: str) -> list[tuple[int, int | None]]:
    """``(budget, the largest rank that fits)``: a budget exactly at a rank's count (<= is not <), one beyond
    rank 256 (the whole range), one below rank 1 (None), and one between two ranks."""
    count = lambda r: 2 * len(ad.resolve_blocks(blocks, depth)) * ad.num_adapter_params(width, r)  # noqa: E731
    exact, between = 2 ** c.randint(0, 8), 2 ** c.randint(0, 8)
    return [(count(exact), exact), (count(256) + c.randint(1, 10_000), 256), (count(1) - c.randint(1, 50), None),
            (count(between) + c.randint(1, count(2 * between) - count(between)), between)]


@task("ex06.best_rank", points=1, needs=("largest_rank",), title="The largest rank within a budget")
def _ex06_best_rank(c: Checker, largest_rank) -> None:
    width, depth, blocks = _budget_cases(c)
    cases = _best_rank_cases(c, width, depth, blocks)
    got = [largest_rank(width, depth, "houlsby", blocks, budget) for budget, _ in cases]
    want = [rank for _, rank in cases]
    mistakes = {"this looks like a strict < against the budget: a rank that needs exactly the budget fits":
                [(rank // 2 or None) if i == 0 else rank for i, (_, rank) in enumerate(cases)],
                "this looks like the ranks stopping at 128: the range is 1, 2, 4, …, 256 (range(9))":
                [min(rank, 128) if rank else rank for rank in want],
                "this looks like 0 where nothing fits: return None": [rank or 0 for rank in want]}
    c.equal("largest power-of-two rank with adapter parameters <= budget", 1, got, want,
            f"width {width}, depth {depth}, blocks {blocks!r}, houlsby, budgets {[b for b, _ in cases]}: expected "
            f"{want}, got {got}.", {k: v for k, v in mistakes.items() if v != want})


@probe("ex06.prepare")
def _probe_prepare(prepare_for_training, seed: int, x: torch.Tensor) -> dict:
    """The backbone's logits, the parameter counts of the model returned, and its logits."""
    backbone = _tiny_vit(seed).eval()
    with torch.no_grad():
        before = backbone(x)
    model = prepare_for_training(backbone, 4, "post_mlp", "last:2")
    if not isinstance(model, nn.Module):
        raise TypeError(f"prepare_for_training must return the model to train, not {type(model).__name__}")
    count = params.count_parameters(model)
    with torch.no_grad():
        after = model.eval()(x)
    return {"adapter": count.adapter, "trainable": count.trainable, "before": before, "after": after}


@task("ex06.prepare", points=2, needs=("prepare_for_training",), title="Hand training the right model")
def _ex06_prepare(c: Checker, prepare_for_training) -> None:
    seed, x = c.randint(0, 2**31), c.randn(3, 3, 16, 16)
    backbone = _tiny_vit(seed).eval()
    with torch.no_grad():
        logits = backbone(x)
    head = params.count_parameters(backbone).head
    adapter, trainable, before, after = _answer(prepare_for_training.probe("ex06.prepare", seed, x),
                                                "adapter", "trainable", "before", "after")
    expected = 2 * ad.num_adapter_params(24, 4)
    right = adapter == expected and trainable == expected + head
    looks = "this looks like adapters added to a copy and the backbone returned: return the model you changed. " \
        if adapter == 0 else "this looks like nothing frozen: set_trainable(model, 'adapter_tune'). " \
        if adapter == expected and trainable > expected + head else ""
    c.part("returns the adapted model, only adapters and head trainable", 1, right,
           f"{looks}the returned model has {adapter} adapter parameters (expected {expected}) and {trainable} "
           f"trainable (expected adapters + head = {expected + head}). Return the model you added adapters to, "
           "after set_trainable(model, 'adapter_tune').")
    same = all(isinstance(t, torch.Tensor) and t.shape == logits.shape for t in (before, after)) and \
        bool(torch.equal(after, before)) and bool((before - logits).abs().max() <= 1e-5)
    c.part("step 0: the same logits as the backbone", 1, same,
           "zero-initialised adapters must leave the logits unchanged.")


# ----------------------------------------------------------------------------- ex07: merging LoRA, reading a comparison
def _lora_case(c: Checker) -> tuple:
    """A random LoRA layer: ``W`` (out, in), ``b`` (out,), ``A`` (r, in), ``B`` (out, r), a scale in [1.5, 3.5]
    (far from 1: a forgotten scale shows), inputs ``x``; ``in`` and ``out`` differ (a transpose shows)."""
    d_in, d_out, r = c.randint(6, 13), c.randint(14, 21), c.randint(1, 5)
    if c.randint(0, 2):
        d_in, d_out = d_out, d_in
    scale = c.uniform(1.5, 3.5)
    return c.randn(d_out, d_in), c.randn(d_out), c.randn(r, d_in), c.randn(d_out, r), scale, c.randn(9, d_in)


@probe("ex07.merge")
def _probe_merge(merged_weight, W: torch.Tensor, A: torch.Tensor, B: torch.Tensor, scale: float) -> dict:
    """The merged weight, and ``W`` as the function left it (a merge must not write into the shared backbone)."""
    merged = merged_weight(W, A, B, scale)
    return {"merged": merged, "W_after": W}


@task("ex07.merge", points=2, needs=("merged_weight",), title="The merged weight of a LoRA layer")
def _ex07_merge(c: Checker, merged_weight) -> None:
    W, b, A, B, scale, x = _lora_case(c)
    layer = lora.LoRALinear(nn.Linear(W.shape[1], W.shape[0]), A.shape[0])
    with torch.no_grad():
        for p, v in ((layer.base.weight, W), (layer.base.bias, b), (layer.lora_A, A), (layer.lora_B, B)):
            p.copy_(v)
    layer.scale = scale
    got, W_after = _answer(merged_weight.probe("ex07.merge", W, A, B, scale), "merged", "W_after")
    want = layer.base.weight.detach() + layer.delta_weight().detach()
    mistakes = {"this looks like the scale forgotten: W + s·B·A": W + B @ A, "this looks like W + B·A / s": W + B @ A / scale,
                "this looks like the scale applied twice": W + scale ** 2 * B @ A}
    c.close("W' = W + s·B·A on a random non-square layer", 1, got, want, atol=1e-4,
            where="B (out, r) times A (r, in) gives (out, in); multiply by the scale s.", mistakes=mistakes)
    with torch.no_grad():
        same = isinstance(got, torch.Tensor) and got.shape == W.shape and \
            torch.allclose(x @ got.T.to(x.dtype) + b, layer(x), atol=1e-4)
    untouched = isinstance(W_after, torch.Tensor) and bool(torch.equal(W_after, W))
    c.part("the merged layer computes the LoRA layer, and W is left as it was", 1, same and untouched,
           "x W'ᵀ + b must equal x Wᵀ + b + s·(x Aᵀ) Bᵀ for every x: check the shape and the order of B and A." if
           not same else "W was changed in place: return a new tensor (W + …, not W += … or W.add_(…)); the frozen "
           "backbone's weight is shared.")


@task("ex07.verify", points=2, needs=("merge_error",), title="A check that can fail")
def _ex07_verify(c: Checker, merge_error) -> None:
    for _ in range(100):  # a case whose update's largest entry has a clear sign, so a signed max is wrong every time
        W, b, A, B, scale, x = _lora_case(c)
        update = (x @ A.T) @ B.T  # (n, out): the two wrong merges' errors are -(scale - 1) and +scale times it
        if abs(float(update.max() + update.min())) > 0.2 * float(update.abs().max()):
            break
    unmerged = x @ W.T + b + scale * (x @ A.T) @ B.T
    right = W + scale * B @ A
    got_right = float(merge_error(right, W, b, A, B, scale, x))
    c.part("about 0 for a right merge", 1, abs(got_right) <= 1e-4,
           f"for a right merge expected ~0, got {got_right:.3g}: compare x W_mergedᵀ + b with the unmerged output.")
    # The scale forgotten, and doubled: their errors have opposite signs, so a signed max is wrong on one of them.
    diffs = [x @ wrong.T + b - unmerged for wrong in (W + B @ A, W + 2 * scale * B @ A)]
    want = [float(d.abs().max()) for d in diffs]
    got = [float(merge_error(wrong, W, b, A, B, scale, x)) for wrong in (W + B @ A, W + 2 * scale * B @ A)]
    mistakes = {"this looks like the signed largest difference: take the absolute value first":
                [float(d.max()) for d in diffs], "this looks like the mean |difference|, not the largest":
                [float(d.abs().mean()) for d in diffs], "this looks like the sum of |differences|, not the largest":
                [float(d.abs().sum()) for d in diffs]}
    c.close("the largest error of two wrong merges (the scale forgotten, the scale doubled)", 1, got, want,
            atol=1e-3 * max(1.0, *want), mistakes=mistakes,
            where="the maximum absolute difference over every entry of the two (n, out) outputs.")


def _verdict(a: list[float], b: list[float], crit: Callable[[int], float] | None = None, ddof: int = 1,
             min_seeds: int = stats.MIN_SEEDS, paired: bool = True) -> str:
    """The verdict of a paired (or, as a mistake, unpaired) interval with critical value ``crit(n)``."""
    a_, b_ = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    n, d = len(a), a_ - b_
    se = float(d.std(correction=ddof)) / math.sqrt(n) if paired else \
        math.sqrt(float(a_.var()) / n + float(b_.var()) / n)
    half = (crit or (lambda k: scipy_stats.t.ppf(0.975, k - 1)))(n) * se
    if n < min_seeds or abs(float(d.mean())) <= half:
        return "no difference"
    return "a" if float(d.mean()) > 0 else "b"


DECIDE_MISTAKES = {  # what the student is told -> the verdict that mistake gives
    "this looks like a z interval: with n seeds use Student's t with n − 1 degrees of freedom (3 seeds: t = 4.30, "
    "not 1.96)": lambda a, b: _verdict(a, b, crit=lambda n: 1.959964),
    "this looks like a one-sided t (t.ppf(0.95, …)): the 95 % interval has 2.5 % in each tail, t.ppf(0.975, n − 1)":
        lambda a, b: _verdict(a, b, crit=lambda n: scipy_stats.t.ppf(0.95, n - 1)),
    "this looks like n degrees of freedom: the t of a mean over n seeds has n − 1":
        lambda a, b: _verdict(a, b, crit=lambda n: scipy_stats.t.ppf(0.975, n)),
    "this looks like the population sd (ddof=0): the sample sd divides by n − 1 (np.std(d, ddof=1))":
        lambda a, b: _verdict(a, b, ddof=0),
    "this looks like no minimum number of seeds: with fewer than 3 the answer is 'no difference'":
        lambda a, b: _verdict(a, b, min_seeds=2),
    "this looks like a and b compared unpaired: take the per-seed differences a_i − b_i first":
        lambda a, b: _verdict(a, b, paired=False),
    "this looks like the winner upside down: 'a' when a − b > 0": lambda a, b: {"a": "b", "b": "a"}.get(
        _verdict(a, b), "no difference"),
}


def _paired_case(c: Checker, n: int, t_stat: float, shared_sd: float = 0.05) -> tuple[list[float], list[float]]:
    """Per-seed accuracies ``a``, ``b`` whose paired differences have exactly the t statistic ``t_stat``, on seed
    effects of sd ``shared_sd`` that both methods share."""
    z = c.randn(n).double()
    z = (z - z.mean()) / z.std()  # mean 0, sample sd 1 exactly
    sd = 0.01
    d = t_stat * sd / math.sqrt(n) + sd * z
    base = 0.8 + shared_sd * c.randn(n).double()
    return (base + d).tolist(), base.tolist()


def _decide_cases(c: Checker) -> tuple[list, list]:
    """Clear cases (3 and 4 seeds, either winner, one only pairing finds) and borderline ones: at n = 3 the
    t statistics 2.5, 3.05, 3.35 and 3.8 fall between the critical values of the usual mistakes (z 1.96,
    one-sided 2.92, 3 df 3.18, ddof=0 3.51) and the right one (4.30), and 2 seeds give no verdict."""
    sign = 1 if c.randint(0, 2) else -1
    clear = [_paired_case(c, 3, 9.0 * sign), _paired_case(c, 4, -9.0 * sign)]
    while True:  # a difference only the pairing finds: an unpaired comparison sees only seed noise
        a, b = _paired_case(c, 3, 9.0, shared_sd=0.1)
        if _verdict(a, b, paired=False) == "no difference":
            break
    clear.append((a, b))
    border = [_paired_case(c, 3, t * (1 if c.randint(0, 2) else -1)) for t in (2.5, 3.05, 3.35, 3.8)]
    return clear, border + [_paired_case(c, 2, 60.0 * sign)]


@task("ex07.decide", points=2, needs=("decide",), title="Which method wins, from paired seeds")
def _ex07_decide(c: Checker, decide) -> None:
    clear, border = _decide_cases(c)
    for what, cases in (("clear differences over 3 and 4 seeds, paired", clear),
                        ("borderline intervals at 3 seeds, and only 2 seeds: the verdict the t interval gives", border)):
        want = [("a" if r.mean > 0 else "b") if r.detected else "no difference"
                for r in (stats.paired_difference(a, b) for a, b in cases)]
        got = [decide(a, b) for a, b in cases]
        wrong = next(((a, b, w, g) for (a, b), w, g in zip(cases, want, got) if g != w), None)
        hint = "" if wrong is None else (
            f"for a={[round(v, 4) for v in wrong[0]]}, b={[round(v, 4) for v in wrong[1]]} expected {wrong[2]!r}, got "
            f"{wrong[3]!r}: paired differences, mean ± t(0.975, n−1)·sd/√n, a winner only if that excludes 0 and n ≥ 3.")
        mistakes = {said: [verdict(a, b) for a, b in cases] for said, verdict in DECIDE_MISTAKES.items()}
        c.equal(what, 1, got, want, hint, {k: v for k, v in mistakes.items() if v != want})
