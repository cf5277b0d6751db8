"""Recipes: one Recipe object for how a run trains; the kit's per-method settings and per-dataset budgets."""

import dataclasses

import pytest

import adaptertune_lite as at
from adaptertune_lite.recipes import (
    BUDGETS,
    DEFAULT_TARGET,
    KIT_RECIPES,
    OFFICIAL_RECIPE,
    TORCHVISION_RECIPES,
    kit_n_train,
    kit_recipe,
    recipe_for,
)


def test_the_default_target_has_a_fast_and_a_full_budget():
    assert DEFAULT_TARGET == "left_digit"
    fast, full = kit_recipe("adapter_tune", fast=True), kit_recipe("adapter_tune", fast=False)
    assert fast == KIT_RECIPES["adapter_tune"].replace(epochs=BUDGETS[DEFAULT_TARGET]["fast"]["epochs"])
    assert full.epochs > fast.epochs and full.lr == fast.lr
    assert kit_n_train(fast=True) == BUDGETS[DEFAULT_TARGET]["fast"]["n_train"] and kit_n_train(fast=False) is None


def test_head_only_gets_many_times_the_epochs_because_its_cached_features_make_them_nearly_free():
    for fast in (True, False):
        epochs = BUDGETS[DEFAULT_TARGET]["fast" if fast else "full"]["epochs"]
        assert kit_recipe("head_only", fast=fast).epochs == at.recipes.HEAD_ONLY_EPOCHS_FACTOR * epochs
        assert kit_recipe("adapter_tune", fast=fast).epochs == epochs


def test_recipes_follow_fast_mode_when_not_told(monkeypatch):
    monkeypatch.setenv("ADAPTERTUNE_FAST", "1")
    assert kit_recipe("head_only", "mnist5k") == kit_recipe("head_only", "mnist5k", fast=True)
    monkeypatch.setenv("ADAPTERTUNE_FAST", "0")
    assert kit_n_train("mnist5k") is None


@pytest.mark.parametrize("call, words", [(lambda: kit_recipe("prompt_tuning"), "head_only"), (lambda: kit_n_train("cifar10"), "left_digit")])
def test_unknown_names_list_the_choices(call, words):
    with pytest.raises(ValueError, match=words):
        call()


def test_the_default_recipe_is_the_official_one_and_is_frozen():
    r = at.Recipe()
    assert (r.lr, r.weight_decay, r.epochs, r.batch_size, r.grad_clip, r.warmup) == (1e-3, 0.05, 50, 64, 1.0, 5.0)
    assert hash(r) == hash(at.Recipe())  # hashable: part of a run's key
    assert OFFICIAL_RECIPE == r.replace(batch_size=128, augment="crop_flip")  # the official code's base.yaml + transform
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.lr = 1.0
    assert r.replace(epochs=10).warmup == 1.0 and r.replace(warmup_epochs=0.5).warmup == 0.5


@pytest.mark.parametrize("bad, words", [(dict(epochs=0), "epochs"), (dict(batch_size=2.5), "batch_size"),
                                        (dict(lr=0), "lr"), (dict(augment="rotate"), "crop_flip")])
def test_a_bad_recipe_says_what_to_use(bad, words):
    with pytest.raises(ValueError, match=words):
        at.Recipe(**bad)


def test_recipe_for_gives_the_kit_recipe_on_kit_data_and_the_official_one_elsewhere():
    assert recipe_for("head_only", "mnist5k", fast=True) == kit_recipe("head_only", "mnist5k", fast=True)
    assert recipe_for("adapter_tune", "cifar100") == OFFICIAL_RECIPE == recipe_for("full_finetune", "pets")
    assert recipe_for("adapter_tune", "svhn").augment == "crop"  # digits are not flipped
    assert set(TORCHVISION_RECIPES) == set(at.ONLINE_DATASETS)  # every torchvision set has one


def test_a_config_for_a_torchvision_dataset_takes_the_official_recipe_and_all_images():
    """The CLI's `sweep --backbone <timm ViT> --dataset cifar100` used to stop at 'No kit recipe'."""
    c = at.RunConfig.from_recipe("adapter_tune", "cifar100", backbone="vit_small_patch16_224.augreg_in21k_ft_in1k")
    assert c.recipe == OFFICIAL_RECIPE and c.n_train is None and c.backbone.startswith("vit_small")


# ----------------------------------------------------------------------------- profiles: the course's scale
@pytest.fixture
def no_profile_env(monkeypatch):
    for name in (at.recipes.PROFILE_ENV, at.recipes.PAPER_BACKBONE_ENV, at.recipes.PAPER_DATASET_ENV):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_laptop_without_a_gpu_gets_the_kit_profile_and_is_told_why(no_profile_env):
    no_profile_env.setattr("torch.cuda.is_available", lambda: False)
    p = at.profile()
    assert (p.name, p.backbone, p.dataset) == ("kit", "kit_vit_tiny", DEFAULT_TARGET)
    assert "no CUDA GPU" in p.why and "kit_vit_tiny on left_digit" in str(p)


@pytest.mark.parametrize("hub, cached, present, expected", [
    (True, False, False, "paper"),  # Colab with internet
    (False, True, True, "paper"),  # a cluster node whose cache and data folder were filled on a login node
    (False, True, False, "kit"),  # weights cached, dataset missing: the paper setting cannot run
    (False, False, False, "kit"),  # a GPU and nothing to run the paper setting with
])
def test_a_gpu_gets_the_paper_profile_only_when_the_weights_and_data_can_be_had(no_profile_env, hub, cached, present, expected):
    no_profile_env.setattr("torch.cuda.is_available", lambda: True)
    no_profile_env.setattr(at.backbones, "hub_reachable", lambda *a, **k: hub)
    no_profile_env.setattr(at.backbones, "cached_models", lambda: [at.recipes.PAPER_BACKBONE] if cached else [])
    no_profile_env.setattr(at.data, "dataset_present", lambda name, root=None: present)
    p = at.profile()
    assert p.name == expected and p.why
    if expected == "kit":
        assert at.recipes.PROFILE_ENV in p.why  # says how to override


def test_the_environment_overrides_the_choice_and_names_the_paper_setting(no_profile_env):
    no_profile_env.setenv(at.recipes.PROFILE_ENV, "paper")
    p = at.profile()
    assert (p.name, p.backbone, p.dataset) == ("paper", at.recipes.PAPER_BACKBONE, "pets") and "ADAPTERTUNE_PROFILE=paper" in p.why
    no_profile_env.setenv(at.recipes.PAPER_BACKBONE_ENV, "deit_tiny_patch16_224.fb_in1k")
    no_profile_env.setenv(at.recipes.PAPER_DATASET_ENV, "cifar10")
    assert (at.profile().backbone, at.profile().dataset) == ("deit_tiny_patch16_224.fb_in1k", "cifar10")
    no_profile_env.setenv(at.recipes.PROFILE_ENV, "papr")
    with pytest.raises(ValueError, match="kit, paper"):
        at.profile()


def test_the_kit_profile_gives_exactly_the_kit_configs_so_shipped_results_keep_their_keys(no_profile_env):
    no_profile_env.setattr("torch.cuda.is_available", lambda: False)
    for method in KIT_RECIPES:
        for fast in (True, False):
            mine, kit = at.RunConfig.for_profile(method, fast=fast, seed=2), at.RunConfig.from_recipe(method, fast=fast, seed=2)
            assert mine == kit and mine.key() == kit.key()


def test_the_paper_profile_trains_by_the_official_recipe_with_its_own_budget(no_profile_env):
    paper = at.profile("paper")
    for fast in (True, False):
        budget = at.recipes.PAPER_BUDGET["fast" if fast else "full"]
        config = at.RunConfig.for_profile("adapter_tune", paper, fast)
        assert config.backbone == at.recipes.PAPER_BACKBONE and config.dataset == "pets" and config.n_train == budget["n_train"]
        assert config.recipe == OFFICIAL_RECIPE.replace(epochs=budget["epochs"])
        head = at.RunConfig.for_profile("head_only", paper, fast).recipe  # cached features: no augmentation, more epochs
        assert head.augment is None and head.epochs == at.recipes.HEAD_ONLY_EPOCHS_FACTOR * budget["epochs"]
    assert at.RunConfig.for_profile("full_finetune", "paper", True, lr=1e-4).recipe.lr == 1e-4  # changes apply last
