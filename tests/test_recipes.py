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


def test_recipes_never_read_fast_mode_from_the_environment_the_budget_is_always_named(monkeypatch):
    """A recipe means one run in every process: FAST mode is decided once, by at.profile(), and passed in."""
    with pytest.raises(TypeError):
        kit_recipe("head_only", "mnist5k")  # noqa  (fast is a required keyword)
    with pytest.raises(TypeError, match="fast must be True"):
        recipe_for("head_only", "mnist5k", fast=None)
    for flag in ("1", "0"):
        monkeypatch.setenv("ADAPTERTUNE_FAST", flag)
        assert kit_recipe("head_only", "mnist5k", fast=True).epochs == 40 * BUDGETS["mnist5k"]["fast"]["epochs"]
        assert kit_n_train("mnist5k", fast=False) is None


@pytest.mark.parametrize("call, words", [(lambda: kit_recipe("prompt_tuning", fast=True), "head_only"),
                                         (lambda: kit_n_train("cifar10", fast=True), "left_digit")])
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
    full = at.recipes.TORCHVISION_BUDGET["full"]["epochs"]
    official = OFFICIAL_RECIPE.replace(epochs=full)
    assert recipe_for("adapter_tune", "cifar100", fast=False) == official == recipe_for("full_finetune", "pets", fast=False)
    assert recipe_for("adapter_tune", "svhn", fast=True).augment == "crop"  # digits are not flipped
    assert set(TORCHVISION_RECIPES) == set(at.ONLINE_DATASETS)  # every torchvision set has one


def test_a_config_for_a_torchvision_dataset_takes_the_official_recipe_at_its_budget():
    """The CLI's `sweep --backbone <timm ViT> --dataset cifar100` used to stop at 'No kit recipe'."""
    c = at.RunConfig.from_recipe("adapter_tune", "cifar100", fast=False, backbone="vit_small_patch16_224.augreg_in21k_ft_in1k")
    assert c.recipe == OFFICIAL_RECIPE.replace(epochs=10) and c.n_train is None and c.backbone.startswith("vit_small")


def test_both_head_only_paths_agree_and_train_on_cached_features():
    """The paper profile's head-only and a plain config's head-only on the same dataset are one recipe, without the
    augmentation that would turn the feature cache off (the official recipe's crop_flip used to stay on one path)."""
    for fast in (True, False):
        plain = at.RunConfig.from_recipe("head_only", "pets", fast=fast).recipe
        assert plain == at.profile("paper", fast=fast).recipe("head_only") and plain.augment is None


# ----------------------------------------------------------------------------- profiles: the course's scale
@pytest.fixture
def no_profile_env(monkeypatch):
    for name in (at.course.profiles.PROFILE_ENV, at.course.profiles.PAPER_BACKBONE_ENV, at.course.profiles.PAPER_DATASET_ENV):
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
    no_profile_env.setattr(at.backbones, "cached_models", lambda: [at.course.profiles.PAPER_BACKBONE] if cached else [])
    no_profile_env.setattr(at.data, "dataset_present", lambda name, root=None: present)
    p = at.profile()
    assert p.name == expected and p.why
    if expected == "kit":
        assert at.course.profiles.PROFILE_ENV in p.why  # says how to override


def test_the_environment_overrides_the_choice_and_names_the_paper_setting(no_profile_env):
    no_profile_env.setenv(at.course.profiles.PROFILE_ENV, "paper")
    p = at.profile()
    assert (p.name, p.backbone, p.dataset) == ("paper", at.course.profiles.PAPER_BACKBONE, "pets") and "ADAPTERTUNE_PROFILE=paper" in p.why
    no_profile_env.setenv(at.course.profiles.PAPER_BACKBONE_ENV, "deit_tiny_patch16_224.fb_in1k")
    no_profile_env.setenv(at.course.profiles.PAPER_DATASET_ENV, "cifar10")
    assert (at.profile().backbone, at.profile().dataset) == ("deit_tiny_patch16_224.fb_in1k", "cifar10")
    no_profile_env.setenv(at.course.profiles.PROFILE_ENV, "papr")
    with pytest.raises(ValueError, match="kit, paper"):
        at.profile()


def test_the_kit_profile_gives_exactly_the_kit_configs_so_shipped_results_keep_their_keys(no_profile_env):
    no_profile_env.setattr("torch.cuda.is_available", lambda: False)
    for method in KIT_RECIPES:
        for fast in (True, False):
            mine, kit = at.RunConfig.for_profile(method, at.profile(fast=fast), seed=2), at.RunConfig.from_recipe(method, fast=fast, seed=2)
            assert mine == kit and mine.key() == kit.key()


def test_the_paper_profile_trains_by_the_official_recipe_with_its_own_budget(no_profile_env):
    for fast in (True, False):
        budget = at.recipes.TORCHVISION_BUDGET["fast" if fast else "full"]
        paper = at.profile("paper", fast=fast)
        config = at.RunConfig.for_profile("adapter_tune", paper)
        assert config.backbone == at.course.profiles.PAPER_BACKBONE and config.dataset == "pets" and config.n_train == budget["n_train"]
        assert config.recipe == OFFICIAL_RECIPE.replace(epochs=budget["epochs"])
        head = at.RunConfig.for_profile("head_only", paper).recipe  # cached features: no augmentation, more epochs
        assert head.augment is None and head.epochs == at.recipes.HEAD_ONLY_EPOCHS_FACTOR * budget["epochs"]
    assert at.RunConfig.for_profile("full_finetune", at.profile("paper", fast=True), lr=1e-4).recipe.lr == 1e-4  # changes apply last
    with pytest.raises(TypeError, match="Profile"):
        at.RunConfig.for_profile("full_finetune", "paper")  # a name would have to read FAST mode here
