"""Training: learns, repeats exactly with a seed, caches features for head-only, reports what it did."""

import copy

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torchvision.datasets import FakeData

import adaptertune_lite as at
from adaptertune_lite.data import FileImageDataset, decode_all
from adaptertune_lite.engine.shortcuts import Suffix, cache_prefix, frozen_body, frozen_prefix_depth
from adaptertune_lite.train import warmup_cosine
from adaptertune_lite.transforms import RandomResizedCropFlip, transform_for
from helpers import tiny_vit

RECIPE = at.Recipe(epochs=2, batch_size=64)  # the official recipe, 2 epochs: a tiny run
TINY = dict(recipe=RECIPE, progress=False)


def fast(**speedups) -> dict:
    """fit's keyword arguments for the tiny run with these speed-ups."""
    return dict(TINY, speedups=at.Speedups(**speedups))


@pytest.fixture(scope="module")
def digits():
    return at.load_dataset("digits", tiny_vit(), n_train=400)


def test_same_seed_gives_identical_results_on_cpu(digits):
    runs = [at.fit(at.add_adapters(tiny_vit(), rank=4), digits.train, digits.val, seed=7, **TINY) for _ in range(2)]
    assert runs[0].history["loss"] == runs[1].history["loss"]
    assert runs[0].val_acc == runs[1].val_acc
    other = at.fit(at.add_adapters(tiny_vit(), rank=4), digits.train, digits.val, seed=8, **TINY)
    assert other.history["loss"] != runs[0].history["loss"]


def test_full_finetune_on_digits_beats_chance_clearly_within_seconds():
    d = at.load_dataset("digits", tiny_vit())
    result = at.fit(tiny_vit(), d.train, d.val, method="full_finetune", recipe=at.Recipe(epochs=10, lr=3e-3, batch_size=32),
                    progress=False)
    assert result.val_acc > 0.5  # chance is 0.1
    assert result.trainable_params == result.total_params


def test_result_reports_history_params_time_and_memory(digits):
    model = at.add_adapters(tiny_vit(), rank=4)
    r = at.fit(model, digits.train, digits.val, eval_each_epoch=True, **TINY)
    steps = 2 * -(-400 // 64)
    assert r.steps == steps and len(r.history["loss"]) == steps and len(r.history["lr"]) == steps
    assert len(r.history["val_acc"]) == 2 and r.val_acc == r.history["val_acc"][-1]
    assert r.trainable_params == at.count_parameters(model).adapter + at.count_parameters(model).head
    assert r.wall_time_s > 0 and r.peak_memory_mb >= 0 and r.memory_kind == "cpu_rss_above_start"
    assert "adapter_tune" in r.summary()


def test_callbacks_see_every_step_with_its_loss_and_learning_rate(digits):
    seen = []
    r = at.fit(tiny_vit(), digits.train, method="full_finetune", callbacks=[seen.append], **TINY)
    assert [s["step"] for s in seen] == list(range(r.steps)) and [s["epoch"] for s in seen][-1] == 1
    assert [float(s["loss"]) for s in seen] == r.history["loss"] and [s["lr"] for s in seen] == r.history["lr"]


@pytest.mark.parametrize("placement, blocks", [("post_block", at.last_k(2)), ("post_mlp", at.last_k(2)), ("post_block", "all")])
def test_a_cached_frozen_prefix_trains_exactly_like_the_whole_backbone(digits, placement, blocks):
    """Adapters in the last 2 of 4 blocks: blocks 0-1 never change, so their output is computed once (and
    block 2's own output too, when its adapter sits after it). With post-block adapters everywhere, block 0's."""
    runs = []
    for cache in (False, True):
        model = at.add_adapters(tiny_vit(), rank=4, placement=placement, blocks=blocks)
        result = at.fit(model, digits.train, digits.val, **fast(cache_frozen_prefix=cache))
        runs.append((result, model))
    (plain, a), (cached, b) = runs
    assert torch.allclose(torch.tensor(plain.history["loss"]), torch.tensor(cached.history["loss"]), atol=1e-5)
    assert plain.val_acc == cached.val_acc
    assert all(torch.allclose(p, q, atol=1e-5) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_the_cached_prefix_reaches_into_a_block_whose_only_trainable_part_is_its_post_block_adapter(images):
    model = at.set_trainable(at.add_adapters(tiny_vit(), rank=4, init="random", blocks=at.last_k(2)), "adapter_tune")
    assert frozen_body(model.blocks[2]) and not frozen_body(model.blocks[1])  # block 1 has no adapter
    mlp = at.set_trainable(at.add_adapters(tiny_vit(), rank=4, placement="post_mlp", blocks=at.last_k(2)), "adapter_tune")
    assert not frozen_body(mlp.blocks[2])  # its adapter sits inside the block: the block's output changes
    data = torch.utils.data.TensorDataset(images, torch.zeros(len(images), dtype=torch.long))
    tokens = cache_prefix(model.eval(), data, 2, body=True, device=torch.device("cpu")).tensors[0]
    assert tokens.shape == (3, 17, 32)  # 16 patches + CLS, width 32
    with torch.no_grad():
        torch.testing.assert_close(Suffix(model, 2, body=True)(tokens), model(images))  # random init: the adapter counts


def test_frozen_prefix_depth_counts_the_leading_blocks_that_train_nothing():
    assert frozen_prefix_depth(at.set_trainable(at.add_adapters(tiny_vit(), rank=2, blocks=[2, 3]), "adapter_tune")) == 2
    assert frozen_prefix_depth(at.set_trainable(at.add_adapters(tiny_vit(), rank=2), "adapter_tune")) == 0
    assert frozen_prefix_depth(at.set_trainable(tiny_vit(), "full_finetune")) == 0
    assert frozen_prefix_depth(at.set_trainable(tiny_vit(), "head_only")) == 4


def test_peak_memory_is_each_runs_own_not_the_process_lifetime_peak(digits):
    """A head-only run after a full fine-tuning run reports less: it adds no gradients or optimiser state
    for the backbone. (A lifetime peak, such as ru_maxrss, would report the same figure twice.)"""
    full = at.fit(tiny_vit(dim=192, depth=6), digits.train, method="full_finetune", **TINY)
    head = at.fit(tiny_vit(dim=192, depth=6), digits.train, method="head_only", **TINY)
    assert full.peak_memory_mb > 20  # Adam's two moments alone: 2 x 2.7 M params x 4 bytes
    assert head.peak_memory_mb < full.peak_memory_mb - 20  # full FT's gradients and moments: 3 x 2.7 M params x 4 bytes


def test_head_only_on_cached_features_matches_running_the_backbone(digits):
    """Caching is a speed-up only: the trained head and its accuracy are the same (up to float rounding)."""
    a, b = tiny_vit(), tiny_vit()
    ra = at.fit(a, digits.train, digits.val, method="head_only", recipe=RECIPE.replace(lr=1e-2), progress=False)
    rb = at.fit(b, digits.train, digits.val, method="head_only", recipe=RECIPE.replace(lr=1e-2), progress=False,
                speedups=at.Speedups(cache_head_features=False))
    torch.testing.assert_close(a.head.weight, b.head.weight, rtol=1e-4, atol=1e-5)
    assert ra.val_acc == pytest.approx(rb.val_acc, abs=0.02)
    assert all(torch.equal(p, q) for p, q in zip(a.blocks.parameters(), tiny_vit().blocks.parameters()))


def test_frozen_backbone_does_not_move_under_adapter_tune(digits):
    model = at.add_adapters(tiny_vit(), rank=4)
    before = copy.deepcopy(model.state_dict())
    at.fit(model, digits.train, None, **TINY)
    after = model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(".adapter." in k or k.startswith("head.") for k in moved)


def test_schedule_warms_up_then_decays_to_zero():
    f = warmup_cosine(total_steps=100, warmup_steps=10)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5) and f(100) == pytest.approx(0.0)


def test_bad_fit_arguments(digits):
    with pytest.raises(ValueError, match="epochs"):
        at.Recipe(epochs=0)
    with pytest.raises(ValueError, match="add_adapters"):
        at.fit(tiny_vit(), digits.train, method="adapter_tune", **TINY)
    with pytest.raises(ValueError, match="add_lora"):
        at.fit(tiny_vit(), digits.train, method="lora", **TINY)
    with pytest.raises(ValueError, match="choose one of"):
        at.fit(tiny_vit(), digits.train, method="prompt_tuning", **TINY)


def test_fast_mode_follows_the_environment(monkeypatch):
    monkeypatch.setenv("ADAPTERTUNE_FAST", "0")
    assert not at.fast_mode() and at.by_mode(1, 50) == 50
    monkeypatch.setenv("ADAPTERTUNE_FAST", "1")
    assert at.fast_mode() and at.by_mode(1, 50) == 1
    monkeypatch.delenv("ADAPTERTUNE_FAST")
    monkeypatch.setenv("CI", "true")
    assert at.fast_mode()
    monkeypatch.setenv("ADAPTERTUNE_FAST", "maybe")
    with pytest.raises(ValueError, match="1 or 0"):
        at.fast_mode()


# ----------------------------------------------------------------------------- the fast paths give the plain results
def test_gradient_checkpointing_trains_exactly_like_the_plain_step(digits):
    """Recomputing a block in the backward pass gives the same gradients: the same losses, to float rounding."""
    runs = [at.fit(at.add_adapters(tiny_vit(), rank=4), digits.train, digits.val, **fast(grad_checkpointing=ck))
            for ck in (False, True)]
    assert torch.allclose(torch.tensor(runs[0].history["loss"]), torch.tensor(runs[1].history["loss"]), atol=1e-5)
    assert runs[0].val_acc == runs[1].val_acc


def test_checkpointing_with_a_cached_prefix_trains_like_the_plain_step(digits):
    runs = []
    for ck in (False, True):
        model = at.add_adapters(tiny_vit(), rank=4, blocks=at.last_k(2))
        runs.append(at.fit(model, digits.train, **fast(cache_frozen_prefix=True, grad_checkpointing=ck)))
        assert model.grad_checkpointing is False  # restored after fit
    assert torch.allclose(torch.tensor(runs[0].history["loss"]), torch.tensor(runs[1].history["loss"]), atol=1e-5)


def test_adapter_hooks_compile_into_one_graph_and_checkpoints_keep_clean_keys(digits, tmp_path):
    """torch.compile sees the adapters' forward hooks without a graph break; fit compiles a wrapper, so
    the model and its saved adapters keep their own names (no ``_orig_mod.``)."""
    model = at.add_adapters(tiny_vit(), rank=4)
    explained = torch._dynamo.explain(model)(torch.randn(2, 3, 32, 32))
    assert explained.graph_count == 1 and explained.graph_break_count == 0
    plain = at.fit(at.add_adapters(tiny_vit(), rank=4), digits.train, **TINY)
    compiled = at.fit(model, digits.train, **fast(compile="aot_eager"))  # the compile path without a C compiler
    assert torch.allclose(torch.tensor(plain.history["loss"]), torch.tensor(compiled.history["loss"]), atol=1e-4)
    at.save_adapters(model, tmp_path / "a.safetensors")
    keys = load_file(tmp_path / "a.safetensors").keys()
    assert keys and not any("_orig_mod" in k for k in keys) and all(k in model.state_dict() for k in keys)


def test_augmentation_crops_and_flips_each_image_on_its_own(images):
    x = torch.arange(4 * 4, dtype=torch.float32).view(1, 1, 4, 4).repeat(8, 3, 1, 1)
    keep = RandomResizedCropFlip(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False)
    assert torch.allclose(keep(x), x, atol=1e-5)  # the whole image, unflipped: unchanged
    flip = RandomResizedCropFlip(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=True)
    torch.manual_seed(0)
    out = flip(x)
    flipped = torch.tensor([torch.allclose(o, x[0].flip(-1), atol=1e-5) for o in out])
    kept = torch.tensor([torch.allclose(o, x[0], atol=1e-5) for o in out])
    assert (flipped | kept).all() and flipped.any() and kept.any()  # per image, not one choice per batch
    crop = RandomResizedCropFlip(scale=(0.1, 0.3))
    assert crop(images).shape == images.shape and not torch.allclose(crop(images), images)
    assert torch.equal(crop.eval()(images), images)  # evaluation is never augmented


def test_augment_applies_to_training_batches_only(digits, monkeypatch):
    """A recipe that augments trains on changed images (every step), and evaluation still sees the plain ones."""
    seen = []

    def spy(name):
        crop = RandomResizedCropFlip(scale=(0.5, 1.0), flip=False)
        return None if name is None else (lambda x: seen.append(x.shape) or crop(x))

    monkeypatch.setattr(at.train, "augmentation", spy)
    plain = at.fit(at.add_adapters(tiny_vit(), rank=4), digits.train, **TINY)
    aug = at.fit(at.add_adapters(tiny_vit(), rank=4), digits.train, digits.val, recipe=RECIPE.replace(augment="crop"),
                 progress=False)
    assert len(seen) == aug.steps and aug.history["loss"] != plain.history["loss"]


@pytest.mark.parametrize("method, blocks", [("head_only", "all"), ("adapter_tune", at.last_k(2))])
def test_an_augmenting_recipe_trains_on_images_not_on_a_cache(digits, method, blocks):
    """Augmented images change every epoch, so cached features or tokens would be stale: fit trains the whole
    model on the augmented images instead (before, augmentation was applied to cached features and crashed)."""
    model = at.add_adapters(tiny_vit(), rank=4, blocks=blocks) if method == "adapter_tune" else tiny_vit()
    r = at.fit(model, digits.train, digits.val, method=method, recipe=RECIPE.replace(augment="crop"),
               progress=False, speedups=at.Speedups(cache_head_features=True, cache_frozen_prefix=True))
    assert r.val_acc is not None and len(r.history["loss"]) == r.steps


def test_file_backed_data_is_decoded_once_and_trains_identically(tmp_path):
    """A torchvision dataset (FakeData: PIL images, offline) decoded into uint8 memory once gives the same
    batches, so the same training run, as decoding every image every epoch."""
    model = tiny_vit()
    base = FakeData(size=96, image_size=(3, 40, 40), num_classes=10, random_offset=0)
    labels = np.array([int(base[i][1]) for i in range(96)])
    split = FileImageDataset(base, np.arange(96), labels, [str(i) for i in range(10)], 32, 0.875, transform_for(model))
    memory = decode_all(split, num_workers=0, progress=False)
    assert memory.images.dtype == torch.uint8 and memory.images.shape == (96, 3, 32, 32)
    assert torch.equal(memory.images[5], split[5][0]) and memory.labels.tolist() == labels.tolist()
    runs = [at.fit(tiny_vit(), split, method="full_finetune", **fast(preload=p)) for p in (False, True)]
    assert runs[0].history["loss"] == runs[1].history["loss"]


def test_fit_spares_biases_and_norms_from_weight_decay_a_stated_departure_from_the_official_code():
    """The official AdapterTune code decays every trainable tensor; the kit spares biases and LayerNorm weights
    (recipes.py and notebook 02 say so). Pinned, so the statement and the code cannot part."""
    model = at.set_trainable(at.add_adapters(tiny_vit(), rank=2), "full_finetune")
    opt = at.train.make_optimizer(model.parameters(), 1e-3, 0.05, torch.device("cpu"))
    decayed, spared = ({id(p) for p in g["params"]} for g in opt.param_groups)
    assert opt.param_groups[0]["weight_decay"] == 0.05 and opt.param_groups[1]["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[i] for i in decayed} >= {"blocks.0.adapter.up.weight", "blocks.0.attn.qkv.weight", "cls_token", "pos_embed"}
    spared_names = {names[i] for i in spared}
    assert spared_names and all(n.endswith("bias") or "norm" in n for n in spared_names)
    assert {"blocks.0.adapter.up.bias", "blocks.0.norm1.weight", "norm.weight"} <= spared_names


def test_the_small_init_keeps_b_up_zero_a_stated_departure_from_the_official_code():
    adapter = at.Adapter(16, 4, init="small")
    assert torch.count_nonzero(adapter.up.bias) == 0 and 0 < adapter.up.weight.abs().max() < 1e-3
