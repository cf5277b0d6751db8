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

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn

from .. import adapters as ad
from .. import drift, lora, params, recipes, stats
from ..course import experiments
from ..elbow import fit_elbow
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
    d, r = c.randint(12, 40), c.randint(2, 8)
    h, seed = c.randn(3, 5, d), c.randint(0, 2**31)
    out, initial, forward = _answer(Adapter.probe("ex01.adapter", d, r, h, seed), "out", "params", "forward")
    initial = _tensors(initial, "the adapter's parameters")
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"Adapter({d}, {r})(h) returned a {type(out).__name__}, not a tensor")
    c.part("forward keeps the shape (..., d)", 1, tuple(out.shape) == tuple(h.shape),
           f"Adapter({d}, {r}) on h of shape {tuple(h.shape)} returned {tuple(out.shape)}: A(h) maps d -> r -> d.")
    ps = _by_shape(initial, d, r)
    zero = bool(torch.equal(out, torch.zeros_like(out))) and bool(ps["W_down"].abs().sum() > 0)
    c.part("AdapterTune init: exact zero output, random W_down", 1, zero,
           f"at init expected A(h) == 0 exactly with W_down random; observed max|A(h)| = {float(out.abs().max()):.3g}, "
           f"|W_down| sum = {float(ps['W_down'].abs().sum()):.3g}. Zero W_up and b_up (nn.init.zeros_), Xavier W_down.")
    n = sum(p.numel() for p in initial)
    c.part("parameter count 2·d·r + r + d", 1, n == ad.num_adapter_params(d, r),
           f"d={d}, r={r}: expected {ad.num_adapter_params(d, r)} parameters, found {n}.")
    g = torch.Generator().manual_seed(seed)  # the values the probe gave the parameters, in the same order
    ps = _by_shape([torch.randn(*p.shape, generator=g) * 0.3 for p in initial], d, r)
    want = F.linear(F.gelu(F.linear(h, ps["W_down"], ps["b_down"])), ps["W_up"], ps["b_up"])
    c.close("forward computes W_up·GELU(W_down·h + b_down) + b_up", 1, forward, want, atol=1e-5,
            where="Check the order: down-projection, GELU, up-projection; both biases.")


@task("ex01.param_count", points=1, needs=("adapter_param_count",), title="The parameter count formula")
def _ex01_param_count(c: Checker, adapter_param_count) -> None:
    cases = [(c.randint(8, 1024), c.randint(1, 64)) for _ in range(3)]
    answers = [(d, r, adapter_param_count(d, r)) for d, r in cases]
    wrong = [(d, r, got) for d, r, got in answers if got != ad.num_adapter_params(d, r)]
    c.part("adapter_param_count(d, r) for random d, r", 1, not wrong,
           "" if not wrong else f"for d={wrong[0][0]}, r={wrong[0][1]} expected "
           f"{ad.num_adapter_params(*wrong[0][:2])}, "
           f"got {wrong[0][2]}: two weight matrices (d·r each) and two biases (r and d).")


def _freeze_model(seed: int) -> nn.Module:
    model = _with_adapters(_tiny_vit(seed), seed, rank=4)
    for p in model.parameters():
        p.requires_grad_(True)  # as a model arrives from timm: everything trainable
    model.head.weight.requires_grad_(False)  # and one head tensor frozen by an earlier experiment
    return model


@probe("ex01.freeze")
def _probe_freeze(freeze_for_adapter_tune, seed: int) -> list[str]:
    """The names of the parameters that still train after the student's function."""
    model = _freeze_model(seed)
    out = freeze_for_adapter_tune(model)
    model = out if isinstance(out, nn.Module) else model
    return [n for n, p in model.named_parameters() if p.requires_grad]


@task("ex01.freeze", points=2, needs=("freeze_for_adapter_tune",), title="Freeze all but adapters and head")
def _ex01_freeze(c: Checker, freeze_for_adapter_tune) -> None:
    seed = c.randint(0, 2**31)
    names = freeze_for_adapter_tune.probe("ex01.freeze", seed)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise TypeError("malformed answer: expected a list of parameter names")
    reference = params.set_trainable(_freeze_model(seed), "adapter_tune")
    want = {n for n, p in reference.named_parameters() if p.requires_grad}
    got = set(names)
    leaked = sorted(got - want)
    c.part("every backbone parameter frozen", 1, not leaked,
           f"{len(leaked)} backbone tensors still train, e.g. {leaked[:2]}: set requires_grad=False on every "
           "parameter first.")
    missed = sorted(want - got)
    c.part("adapters and head trainable", 1, not missed,
           f"{len(missed)} tensors should train but do not, e.g. {missed[:2]}: the head too "
           "(model.head), and every parameter of every Adapter.")


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
            "a forward hook on block.mlp that returns output + adapter(output).")
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
    model, zero, rand = _identity_models(seed)
    gap = max_logit_change(model, zero, x)
    rand.train(), model.train()  # as they arrive: in train mode
    return {"zero": gap, "random": max_logit_change(model, rand, x)}


@task("ex02.identity_gap", points=2, needs=("max_logit_change",), title="Measure the change in logits")
def _ex02_identity_gap(c: Checker, max_logit_change) -> None:
    seed, x = c.randint(0, 2**31), c.randn(4, 3, 16, 16)
    zero_gap, random_gap = _answer(max_logit_change.probe("ex02.identity_gap", seed, x), "zero", "random")
    gap = float(zero_gap)
    c.part("zero init gives exactly 0.0 (models in eval mode)", 1, gap == 0.0,
           f"observed {gap:.3g}. In train mode drop_path drops blocks at random, so two forwards differ: "
           "call .eval() on both models (and use torch.no_grad()).")
    model, _, rand = _identity_models(seed)
    with torch.no_grad():
        want = (rand.eval()(x) - model.eval()(x)).abs().max()
    c.close("random init: max |logit difference| over the batch", 1, random_gap, want, atol=1e-5,
            where="Return the largest absolute difference between the two models' logits, as a float.")


# ----------------------------------------------------------------------------- ex03: gradients at step 0
@task("ex03.backprop", points=3, needs=("adapter_grads",), title="Backpropagate through an adapter by hand")
def _ex03_backprop(c: Checker, adapter_grads) -> None:
    n, d, r = c.randint(3, 9), c.randint(6, 20), c.randint(2, 5)
    W_down, b_down, W_up, b_up = c.randn(r, d), c.randn(r) * 0.1, c.randn(d, r), c.randn(d) * 0.1
    h, g = c.randn(n, d), c.randn(n, d)
    leaves = [t.clone().requires_grad_(True) for t in (W_down, b_down, W_up, b_up)]
    out = F.linear(F.gelu(F.linear(h, leaves[0], leaves[1])), leaves[2], leaves[3])
    want = dict(zip(("W_down", "b_down", "W_up", "b_up"), torch.autograd.grad(out, leaves, grad_outputs=g)))
    got = adapter_grads(W_down.clone(), b_down.clone(), W_up.clone(), b_up.clone(), h.clone(), g.clone())
    if not isinstance(got, dict):
        raise TypeError("adapter_grads must return a dict with keys W_down, b_down, W_up, b_up, "
                        f"not {type(got).__name__}")
    where = {"W_up": "dL/dW_up = gᵀ·GELU(z), z = h·W_downᵀ + b_down.", "b_up": "dL/db_up sums g over the rows.",
             "W_down": "dL/dW_down = (g·W_up ⊙ GELU'(z))ᵀ·h; GELU'(z) = Φ(z) + z·φ(z).",
             "b_down": "dL/db_down sums g·W_up ⊙ GELU'(z) over the rows."}
    for name in ("W_up", "b_up", "W_down", "b_down"):
        c.close(f"dL/d{name}", 0.75, got.get(name, float("nan")), want[name], atol=1e-4, where=where[name])


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
    d, r = c.randint(16, 64), c.randint(2, 8)
    got = _answer(adaptertune_init_.probe("ex03.init", d, r), "up.weight", "up.bias", "down.bias", "down.weight")
    up_w, up_b, down_b, w = _tensors(got, "the adapter's parameters")
    shapes = [tuple(t.shape) for t in got] == [(d, r), (d,), (r,), (r, d)]
    zeros = shapes and all(bool(torch.equal(t, torch.zeros_like(t))) for t in (up_w, up_b, down_b))
    c.part("W_up, b_up, b_down exactly zero", 1, zeros, "nn.init.zeros_ on up.weight, up.bias and down.bias.")
    bound = math.sqrt(6 / (d + r))
    xavier = shapes and bool(w.abs().max() <= bound + 1e-6) and \
        abs(float(w.double().std()) - bound / math.sqrt(3)) < 0.25 * bound / math.sqrt(3)
    c.part("W_down Xavier-uniform (random, not zero)", 1, xavier,
           f"expected values in ±{bound:.3f} with std ≈ {bound / math.sqrt(3):.3f}; observed max |w| = "
           f"{float(w.abs().max()):.3f}, std {float(w.double().std()):.3f}. A zero W_down would leave W_up without "
           "gradient: nn.init.xavier_uniform_(adapter.down.weight).")


# ----------------------------------------------------------------------------- ex04: drift
@task("ex04.cka", points=3, needs=("linear_cka",), title="Linear CKA")
def _ex04_cka(c: Checker, linear_cka) -> None:
    n = c.randint(40, 80)
    x, y = c.randn(n, 8), c.randn(n, 12)
    y = y + 0.5 * x @ c.randn(8, 12)  # related but not the same
    c.close("value on random features", 1, linear_cka(x, y), drift.linear_cka(x, y), atol=1e-5,
            where="CKA = ‖Yᵀ X‖_F² / (‖Xᵀ X‖_F · ‖Yᵀ Y‖_F) on column-centred X, Y.")
    q, _ = torch.linalg.qr(c.randn(8, 8))
    c.close("invariant to rotation and scaling: CKA(X, 3·X·Q) = 1", 1, linear_cka(x, 3.0 * x @ q), 1.0, atol=1e-5,
            where="Use the Frobenius norms of the cross- and self-covariances exactly as in the formula.")
    shifted = x + 50.0  # a large mean offset, as real features have
    c.close("centres the features first", 1, linear_cka(shifted, y + 20.0), drift.linear_cka(x, y), atol=1e-4,
            where="Subtract each column's mean (X - X.mean(0)) before the products.")


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
    cls = lambda m: [out[:, 0] for out in _streams(m, x)]  # noqa: E731  (B, D) per block
    want = [drift.linear_cka(a, b) for a, b in zip(cls(adapted), cls(model))]
    got = cls_cka_per_block.probe("ex04.cls_cka", seed, x)
    if not isinstance(got, list):
        raise TypeError(f"malformed answer: expected a list, got a {type(got).__name__}")
    c.part("one value per block", 0.5, len(got) == len(want),
           f"expected {len(want)} values (one per block), got {len(got)}.")
    c.close("values: CKA of the CLS token (index 0) after each block", 1.5,
            got if len(got) == len(want) else [0.0] * len(want),
            want, atol=1e-4,
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
@task("ex05.elbow", points=2, needs=("elbow_rank",), title="The elbow by the stated rule")
def _ex05_elbow(c: Checker, elbow_rank) -> None:
    ranks = [1, 2, 4, 8, 16, 32, 64]

    def curve(seeds: int) -> torch.Tensor:
        a, b = 0.85 + 0.1 * float(torch.rand(1, generator=c.generator)), 0.3
        k = 0.3 + float(torch.rand(1, generator=c.generator))
        mean = torch.tensor([a - b * rr ** (-k) for rr in ranks])
        return (mean[:, None] + 0.004 * c.randn(len(ranks), seeds)).clamp(0, 1)
    one = curve(1)[:, 0]
    want = fit_elbow(ranks, one.numpy(), threshold=0.01).elbow
    got = int(elbow_rank(ranks, one.tolist(), 0.01))
    c.part("one seed, threshold 1 point", 1, got == want,
           f"expected r = {want}, got {got}: the smallest swept r with acc(largest r) - acc(r) < threshold.")
    three, threshold = curve(3), 0.02
    want = fit_elbow(ranks, three.numpy(), threshold=threshold).elbow
    got = int(elbow_rank(ranks, three.tolist(), threshold))
    c.part("three seeds averaged, threshold 2 points", 1, got == want,
           f"expected r = {want}, got {got}: accuracies arrive as (n_ranks, n_seeds); average over seeds first.")


@task("ex05.lora_scale", points=1, needs=("lora_scaling",), title="LoRA's α/r against AdapterTune's fixed s")
def _ex05_lora_scale(c: Checker, lora_scaling) -> None:
    alpha, r = float(c.randint(1, 64)), c.randint(1, 64)
    c.close(f"lora_scaling(alpha={alpha:g}, r={r})", 1, lora_scaling(alpha, r), alpha / r, atol=1e-9,
            where="LoRA multiplies its update by α / r, so raising r at fixed α shrinks each direction's scale.")


@probe("ex05.configs")
def _probe_configs(rank_sweep_configs, ranks: list, seeds: list) -> list:
    """The key of each config returned (None for anything that is not a RunConfig)."""
    got = list(rank_sweep_configs(ranks, seeds))
    return [cfg.key() if isinstance(cfg, experiments.RunConfig) else None for cfg in got]


@task("ex05.configs", points=1, needs=("rank_sweep_configs",), title="A rank sweep as engine configs")
def _ex05_configs(c: Checker, rank_sweep_configs) -> None:
    ranks, seeds = sorted({2 ** c.randint(0, 7) for _ in range(3)}), [0, c.randint(1, 9)]
    base = experiments.RunConfig.from_recipe("adapter_tune", recipes.DEFAULT_TARGET, fast=True)
    want = {cfg.key() for cfg in experiments.grid(base, rank=ranks, seed=seeds)}
    got = rank_sweep_configs.probe("ex05.configs", ranks, seeds)
    if not isinstance(got, list):
        raise TypeError(f"malformed answer: expected a list, got a {type(got).__name__}")
    keys = set(got) if all(isinstance(k, str) for k in got) else set()
    c.part(f"the {len(want)} FAST AdapterTune configs on the default target", 1, keys == want and len(got) == len(want),
           f"expected {len(want)} RunConfigs (every rank × seed, RunConfig.from_recipe('adapter_tune', "
           f"DEFAULT_TARGET, fast=True)); got {len(got)} of which {len(keys & want)} match.")


# ----------------------------------------------------------------------------- ex06: placement under a budget
def _budget_cases(c: Checker):
    width, depth = 8 * c.randint(2, 6), c.randint(3, 7)
    blocks = [("all", "all"), ("last:2", "last:2"), ("every:2", "every:2")][c.randint(0, 3)][0]
    return width, depth, blocks


@task("ex06.count", points=2, needs=("adapter_params",), title="Adapter parameters for a placement")
def _ex06_count(c: Checker, adapter_params) -> None:
    for placement, pts in (("post_block", 0.5), ("post_mlp", 0.5), ("houlsby", 1.0)):
        width, depth, blocks = _budget_cases(c)
        rank = 2 ** c.randint(0, 6)
        model = _tiny_vit(0, dim=width, depth=depth)
        want = params.count_parameters(_with_adapters(model, 0, rank=rank, placement=placement, blocks=blocks)).adapter
        got = adapter_params(width, depth, rank, placement, blocks)
        c.part(f"{placement}, blocks={blocks!r}", pts, got == want,
               f"width {width}, depth {depth}, rank {rank}: expected {want}, got {got}. "
               "Houlsby puts two adapters in each chosen block; at.resolve_blocks(blocks, depth) lists the blocks.")


@task("ex06.best_rank", points=1, needs=("largest_rank",), title="The largest rank within a budget")
def _ex06_best_rank(c: Checker, largest_rank) -> None:
    width, depth, blocks = _budget_cases(c)
    n_sites = len(ad.resolve_blocks(blocks, depth)) * 2  # houlsby: two per block
    rank = 2 ** c.randint(0, 7)
    budget = n_sites * ad.num_adapter_params(width, rank) + c.randint(0, 50)
    got = largest_rank(width, depth, "houlsby", blocks, budget)
    c.part("largest power-of-two rank with adapter parameters <= budget", 1, got == rank,
           f"width {width}, depth {depth}, blocks {blocks!r}, houlsby, budget {budget}: expected {rank}, got {got}.")


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
    c.part("returns the adapted model, only adapters and head trainable", 1, right,
           f"the returned model has {adapter} adapter parameters (expected {expected}) and {trainable} "
           f"trainable (expected adapters + head = {expected + head}). Return the model you added adapters to, "
           "after set_trainable(model, 'adapter_tune').")
    same = all(isinstance(t, torch.Tensor) and t.shape == logits.shape for t in (before, after)) and \
        bool(torch.equal(after, before)) and bool((before - logits).abs().max() <= 1e-5)
    c.part("step 0: the same logits as the backbone", 1, same,
           "zero-initialised adapters must leave the logits unchanged.")


# ----------------------------------------------------------------------------- ex07: merging LoRA, reading a comparison
def _lora_case(c: Checker) -> tuple:
    """A random LoRA layer: ``W`` (out, in), ``b`` (out,), ``A`` (r, in), ``B`` (out, r), a scale, inputs ``x``."""
    d_in, d_out, r = c.randint(6, 20), c.randint(6, 20), c.randint(1, 5)
    scale = 0.5 + float(torch.rand(1, generator=c.generator)) * 3
    return c.randn(d_out, d_in), c.randn(d_out), c.randn(r, d_in), c.randn(d_out, r), scale, c.randn(9, d_in)


@task("ex07.merge", points=2, needs=("merged_weight",), title="The merged weight of a LoRA layer")
def _ex07_merge(c: Checker, merged_weight) -> None:
    W, b, A, B, scale, x = _lora_case(c)
    layer = lora.LoRALinear(nn.Linear(W.shape[1], W.shape[0]), A.shape[0])
    with torch.no_grad():
        for p, v in ((layer.base.weight, W), (layer.base.bias, b), (layer.lora_A, A), (layer.lora_B, B)):
            p.copy_(v)
    layer.scale = scale
    got = merged_weight(W.clone(), A.clone(), B.clone(), scale)
    want = layer.base.weight.detach() + layer.delta_weight().detach()
    c.close("W' = W + s·B·A on a random non-square layer", 1, got, want, atol=1e-4,
            where="B (out, r) times A (r, in) gives (out, in); multiply by the scale s.")
    with torch.no_grad():
        same = torch.as_tensor(got).shape == W.shape and torch.allclose(x @ torch.as_tensor(got).T + b, layer(x), atol=1e-4)
    c.part("the merged layer computes what the LoRA layer computes", 1, same,
           "x W'ᵀ + b must equal x Wᵀ + b + s·(x Aᵀ) Bᵀ for every x: check the shape and the order of B and A.")


@task("ex07.verify", points=2, needs=("merge_error",), title="A check that can fail")
def _ex07_verify(c: Checker, merge_error) -> None:
    W, b, A, B, scale, x = _lora_case(c)
    unmerged = x @ W.T + b + scale * (x @ A.T) @ B.T
    right = W + scale * B @ A
    got_right = float(merge_error(right, W, b, A, B, scale, x))
    c.part("about 0 for a right merge", 1, abs(got_right) <= 1e-4,
           f"for a right merge expected ~0, got {got_right:.3g}: compare x W_mergedᵀ + b with the unmerged output.")
    wrong = W + B @ A  # the scale forgotten
    want = float((x @ wrong.T + b - unmerged).abs().max())
    got_wrong = float(merge_error(wrong, W, b, A, B, scale, x))
    c.close("the largest error of a wrong merge (the scale forgotten)", 1, got_wrong, want, atol=1e-3 * max(1.0, want),
            where="the maximum absolute difference over every entry of the two (n, out) outputs.")


@task("ex07.decide", points=2, needs=("decide",), title="Which method wins, from paired seeds")
def _ex07_decide(c: Checker, decide) -> None:
    answers = []  # (a, b, the kit's verdict, the student's)
    for shift, noise, n in ((0.05, 0.005, 3), (-0.04, 0.004, 4), (0.0, 0.03, 3), (0.2, 0.01, 2)):
        base = 0.8 + 0.05 * c.randn(n)  # seed effects, shared by both methods
        a, b = (base + shift + noise * c.randn(n)).tolist(), (base + noise * c.randn(n)).tolist()
        res = stats.paired_difference(a, b)
        answers.append((a, b, ("a" if res.mean > 0 else "b") if res.detected else "no difference", decide(a, b)))

    def hint(group: list) -> str:
        wrong = [(a, b, want, got) for a, b, want, got in group if got != want]
        if not wrong:
            return ""
        a, b, want, got = wrong[0]
        return (f"for a={[round(v, 3) for v in a]}, b={[round(v, 3) for v in b]} expected {want!r}, got {got!r}: "
                "paired differences, mean ± t(0.975, n−1)·sd/√n, a winner only if that excludes 0 and n ≥ 3.")
    c.part("a clear difference over 3 and 4 seeds", 1, all(want == got for *_, want, got in answers[:2]), hint(answers[:2]))
    c.part("noisy seeds, and only 2 seeds: the verdict the interval gives", 1,
           all(want == got for *_, want, got in answers[2:]), hint(answers[2:]))
