"""Adapters: exact identity at zero init, the step-0 gradient story, counting, saving, bad input."""

import copy
import os
import stat

import pytest
import timm
import torch
from safetensors import safe_open

import adaptertune_lite as at
from helpers import tiny_vit

BLOCK_SELECTIONS = ["all", [0, 2], at.every_k(2), at.first_k(1), at.last_k(2)]


def deit_tiny():
    torch.manual_seed(0)
    return timm.create_model("deit_tiny_patch16_224", pretrained=False, num_classes=10).eval()


ARCHS = {"tiny_vit": (lambda: tiny_vit().eval(), 32), "deit_tiny_patch16_224": (deit_tiny, 224)}


@pytest.mark.parametrize("arch", ARCHS)
def test_zero_init_adapters_leave_logits_bitwise_identical(arch):
    build, size = ARCHS[arch]
    base = build()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = base(x)
    for placement in at.PLACEMENTS:
        for blocks in BLOCK_SELECTIONS:
            model = copy.deepcopy(base)
            at.add_adapters(model, rank=4, placement=placement, blocks=blocks, init="zero")
            assert at.adapters_of(model), (placement, blocks)
            with torch.no_grad():
                assert torch.equal(model(x), before), (arch, placement, blocks)


@pytest.mark.parametrize("init", ["small", "random"])
def test_nonzero_inits_change_the_output(vit, images, init):
    before = vit(images)
    after = at.add_adapters(copy.deepcopy(vit), rank=4, init=init)(images)
    assert not torch.equal(after, before)
    if init == "small":  # near-identity
        assert (after - before).abs().max() < 1e-2


def test_for_one_seed_every_init_draws_the_same_w_down_in_every_adapter(vit):
    """An init comparison must differ in W_up only (notebook 03 relies on it)."""
    downs, ups = {}, {}
    for init in at.INITS:
        torch.manual_seed(0)
        model = at.add_adapters(copy.deepcopy(vit), rank=4, placement="houlsby", init=init)
        downs[init] = [a.down.weight.detach().clone() for a in at.adapters_of(model).values()]
        ups[init] = [a.up.weight.detach().clone() for a in at.adapters_of(model).values()]
    assert len(downs["zero"]) == 2 * len(vit.blocks)
    for init in ("small", "random"):
        assert all(torch.equal(a, b) for a, b in zip(downs["zero"], downs[init])), init
    assert not torch.equal(ups["random"][0], ups["random"][1])  # W_up still differs between adapters
    bound = (6 / (32 + 4)) ** 0.5
    assert all(u.abs().max() <= bound for u in ups["random"]) and all(u.std() < 1e-3 for u in ups["small"])
    torch.manual_seed(1)
    other = at.add_adapters(copy.deepcopy(vit), rank=4, placement="houlsby", init="random")
    assert not torch.equal(next(iter(at.adapters_of(other).values())).up.weight, ups["random"][0])  # and with the seed


def test_backbone_state_dict_keys_are_unchanged(vit):
    keys = set(vit.state_dict())
    at.add_adapters(vit, rank=4, placement="houlsby")
    new = set(vit.state_dict()) - keys
    assert keys <= set(vit.state_dict())
    assert new and all(".adapter." in k for k in new)
    assert "blocks.0.attn.adapter.down.weight" in new and "blocks.0.mlp.adapter.up.bias" in new


def test_placements_put_adapters_where_they_say(vit):
    where = {
        "post_block": "blocks.0.adapter",
        "post_attn": "blocks.0.attn.adapter",
        "post_mlp": "blocks.0.mlp.adapter",
        "parallel": "blocks.0.mlp.adapter",
    }
    for placement, name in where.items():
        model = at.add_adapters(copy.deepcopy(vit), rank=2, placement=placement, blocks=[0])
        assert list(at.adapters_of(model)) == [name]
    assert len(at.adapters_of(at.add_adapters(copy.deepcopy(vit), rank=2, placement="houlsby"))) == 2 * 4


def test_parallel_adapter_reads_the_mlp_input_not_its_output(vit, images):
    """AdaptFormer: the parallel adapter sees LN(x), the MLP's input; post_mlp sees the MLP output."""
    par = at.add_adapters(copy.deepcopy(vit), rank=2, placement="parallel", blocks=[0], init="random")
    post = copy.deepcopy(vit)
    at.add_adapters(post, rank=2, placement="post_mlp", blocks=[0], init="random")
    post.load_state_dict(par.state_dict())  # same weights, different wiring
    assert not torch.equal(par(images), post(images))


def test_print_model_tells_the_placements_apart(vit):
    """post_mlp and parallel both sit on the MLP; what each computes there shows in print(model)."""
    shown = {p: repr(at.add_adapters(copy.deepcopy(vit), rank=2, placement=p, blocks=[0])) for p in at.PLACEMENTS}
    assert "post_mlp: mlp(x) + A(mlp(x))" in shown["post_mlp"] and "parallel: mlp(x) + A(x)" in shown["parallel"]
    assert "post_block: block(x) + A(block(x))" in shown["post_block"]
    assert shown["houlsby"].count("houlsby: ") == 2  # after attention and after the MLP
    assert len(set(shown.values())) == len(at.PLACEMENTS)


def test_adapter_config_is_a_typed_record_of_what_was_added(vit):
    model = at.add_adapters(vit, rank=3, placement="houlsby", blocks=at.last_k(2), scale=0.5)
    assert model.adapter_config == at.AdapterConfig(rank=3, placement="houlsby", blocks=(2, 3), init="zero", scale=0.5, dim=32)
    assert at.AdapterConfig.from_dict(model.adapter_config.to_dict()) == model.adapter_config


@pytest.mark.parametrize("placement", at.PLACEMENTS)
def test_remove_adapters_gives_back_the_backbone_bitwise(vit, images, placement):
    """Trained (non-zero) adapters change the output; removing them restores the backbone's forward bit for bit
    and its state_dict keys exactly, and adapters can be added again afterwards."""
    with torch.no_grad():
        before, keys = vit(images), list(vit.state_dict())
    model = at.add_adapters(vit, rank=2, placement=placement, init="random")
    with torch.no_grad():
        assert not torch.equal(model(images), before)
    assert at.remove_adapters(model) is vit
    with torch.no_grad():
        assert torch.equal(vit(images), before)
    assert list(vit.state_dict()) == keys and not at.adapters_of(vit) and not hasattr(vit, "adapter_config")
    assert all(not m._forward_hooks for m in vit.modules())  # no hook left behind
    at.add_adapters(vit, rank=2, placement=placement)  # a clean backbone again


def test_a_copied_model_removes_its_own_adapters_only(vit, images):
    model = at.add_adapters(vit, rank=2, init="random")
    twin = copy.deepcopy(model)
    at.remove_adapters(twin)
    with torch.no_grad():
        assert torch.equal(model(images), model(images)) and at.adapters_of(model) and not at.adapters_of(twin)
        assert not torch.equal(model(images), twin(images))


def test_block_selections_resolve_to_indices():
    assert at.resolve_blocks("all", 6) == [0, 1, 2, 3, 4, 5]
    assert at.resolve_blocks(at.every_k(2), 6) == [0, 2, 4]
    assert at.resolve_blocks(at.first_k(2), 6) == [0, 1]
    assert at.resolve_blocks(at.last_k(2), 6) == [4, 5]
    assert at.resolve_blocks([3, -1, 3], 6) == [3, 5]


def test_step0_gradient_reaches_up_projection_only_then_both_train(vit, images):
    at.add_adapters(vit, rank=4)
    at.set_trainable(vit, "adapter_tune")
    opt = torch.optim.AdamW([p for p in vit.parameters() if p.requires_grad], lr=1e-2)
    labels = torch.tensor([0, 1, 2])
    torch.nn.functional.cross_entropy(vit(images), labels).backward()
    for a in at.adapters_of(vit).values():
        assert torch.equal(a.down.weight.grad, torch.zeros_like(a.down.weight))  # flows through W_up = 0
        assert torch.equal(a.down.bias.grad, torch.zeros_like(a.down.bias))
        assert a.up.weight.grad.abs().sum() > 0
    opt.step()
    opt.zero_grad()
    torch.nn.functional.cross_entropy(vit(images), labels).backward()
    for a in at.adapters_of(vit).values():
        assert a.down.weight.grad.abs().sum() > 0 and a.up.weight.grad.abs().sum() > 0


def test_parameter_count_formula_and_vit_base_figure():
    assert at.num_adapter_params(768, 16) == 2 * 768 * 16 + 16 + 768
    assert sum(p.numel() for p in at.Adapter(768, 16).parameters()) == at.num_adapter_params(768, 16)
    vit_b = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=10)
    at.add_adapters(vit_b, rank=16, placement="post_block")
    counts = at.count_parameters(vit_b)
    assert counts.adapter == 304_320  # 12 blocks x (2*768*16 + 16 + 768)
    assert counts.head == 768 * 10 + 10
    assert counts.total == counts.adapter + counts.head + counts.backbone


def test_set_trainable_leaves_exactly_the_intended_tensors_trainable(vit):
    at.add_adapters(vit, rank=4)
    names = lambda: {n for n, p in vit.named_parameters() if p.requires_grad}  # noqa: E731
    at.set_trainable(vit, "head_only")
    assert names() == {"head.weight", "head.bias"}
    at.set_trainable(vit, "adapter_tune")
    assert names() == {"head.weight", "head.bias"} | {n for n, _ in vit.named_parameters() if ".adapter." in n}
    at.set_trainable(vit, "full_finetune")
    assert names() == {n for n, _ in vit.named_parameters()}
    counts = at.count_parameters(vit)
    assert counts.trainable == counts.total
    at.set_trainable(vit, "adapter_tune")
    c = at.count_parameters(vit)
    assert c.trainable == c.adapter + c.head
    assert c.fraction_of_full == pytest.approx(c.trainable / (c.backbone + c.head))


def test_save_then_load_into_a_fresh_backbone_gives_identical_logits(tmp_path, images):
    model = at.add_adapters(tiny_vit().eval(), rank=4, placement="houlsby", blocks=[1, 3], init="random")
    at.set_trainable(model, "adapter_tune")
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(3):  # train first (as peft's test_parameters_after_loading_model does): the saved
        opt.zero_grad()  # weights then differ from anything a fresh model could draw by itself
        torch.nn.functional.cross_entropy(model(images), torch.tensor([1, 2, 3])).backward()
        opt.step()
    path = at.save_adapters(model, tmp_path / "adapters.safetensors")
    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
    assert keys and all(".adapter." in k or k.startswith("head.") for k in keys)  # no backbone weights
    fresh = tiny_vit().eval()  # same backbone weights (same seed), untrained head
    assert not torch.allclose(fresh(images), model(images))
    at.load_adapters(fresh, path)
    assert torch.equal(fresh(images), model(images))
    assert fresh.adapter_config == model.adapter_config


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path, vit):
    at.add_adapters(vit, rank=2)
    at.save_adapters(vit, tmp_path / "a.safetensors")
    at.save_adapters(vit, tmp_path / "a.safetensors")  # overwrite in place
    assert [p.name for p in tmp_path.iterdir()] == ["a.safetensors"]


# ----------------------------------------------------------------------------- bad input
def _unchanged(model, reference):
    return list(model.state_dict()) == list(reference.state_dict()) and not at.adapters_of(model)


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(rank=0), ValueError, "positive int"),
        (dict(rank=-3), ValueError, "positive int"),
        (dict(rank=2.5), TypeError, "positive int"),
        (dict(rank=True), TypeError, "positive int"),
        (dict(placement="everywhere"), ValueError, "choose one of"),
        (dict(init="ones"), ValueError, "choose one of"),
        (dict(blocks=[0, 9]), ValueError, "out of range"),
        (dict(blocks="middle"), ValueError, "use 'all'"),
        (dict(blocks=at.first_k(9)), ValueError, "k <= 4"),
        (dict(blocks=[]), ValueError, "at least one"),
        (dict(blocks=3), TypeError, "list of ints"),
    ],
)
def test_bad_arguments_raise_clear_errors_and_leave_the_model_unmodified(vit, kwargs, error, words):
    reference = copy.deepcopy(vit)
    with pytest.raises(error, match=words):
        at.add_adapters(vit, **{"rank": 4, **kwargs})
    assert _unchanged(vit, reference)


def test_model_without_blocks_is_rejected():
    with pytest.raises(TypeError, match="VisionTransformer"):
        at.add_adapters(torch.nn.Linear(4, 4), rank=2)


def test_adding_adapters_twice_is_rejected(vit):
    at.add_adapters(vit, rank=4)
    keys = list(vit.state_dict())
    with pytest.raises(ValueError, match="already has adapters"):
        at.add_adapters(vit, rank=4)
    assert list(vit.state_dict()) == keys


@pytest.mark.parametrize(
    "other, words",
    [
        (lambda: at.add_adapters(tiny_vit(depth=3).eval(), rank=4), "saved for backbone"),
        (lambda: at.add_adapters(tiny_vit().eval(), rank=8), "different configuration"),
        (lambda: at.add_adapters(tiny_vit().eval(), rank=4, placement="post_mlp"), "different configuration"),
        (lambda: tiny_vit(num_classes=7).eval(), "num_classes"),
    ],
)
def test_loading_adapters_saved_for_another_setup_is_rejected(tmp_path, other, words):
    path = at.save_adapters(at.add_adapters(tiny_vit().eval(), rank=4), tmp_path / "a.safetensors")
    model = other()
    reference = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match=words):
        at.load_adapters(model, path)
    after = model.state_dict()
    assert list(after) == list(reference) and all(torch.equal(after[k], reference[k]) for k in reference)


def test_truncated_or_foreign_files_are_rejected(tmp_path, vit):
    path = at.save_adapters(at.add_adapters(tiny_vit().eval(), rank=4), tmp_path / "a.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[:-100])
    foreign = tmp_path / "foreign.safetensors"
    foreign.write_text("this is not a safetensors file")
    for bad in (truncated, foreign):
        with pytest.raises(ValueError, match="save it again"):
            at.load_adapters(vit, bad)
        assert not at.adapters_of(vit)
    with pytest.raises(FileNotFoundError, match="save_adapters"):
        at.load_adapters(vit, tmp_path / "missing.safetensors")


def test_loading_adapters_of_another_scale_is_rejected(tmp_path):
    path = at.save_adapters(at.add_adapters(tiny_vit().eval(), rank=4, scale=2.0), tmp_path / "a.safetensors")
    with pytest.raises(ValueError, match="scale"):
        at.load_adapters(at.add_adapters(tiny_vit().eval(), rank=4, scale=1.0), path)


def test_saved_files_get_the_usual_permissions(tmp_path, vit):
    path = at.save_adapters(at.add_adapters(vit, rank=2), tmp_path / "a.safetensors")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
