"""Recipes: one place for the kit's per-method settings and per-dataset budgets, following FAST mode."""

import pytest

from adaptertune_lite.recipes import BUDGETS, DEFAULT_TARGET, KIT_RECIPES, kit_n_train, kit_recipe


def test_the_default_target_has_a_fast_and_a_full_budget():
    assert DEFAULT_TARGET == "left_digit"
    fast, full = kit_recipe("adapter_tune", fast=True), kit_recipe("adapter_tune", fast=False)
    assert fast == {**KIT_RECIPES["adapter_tune"], "epochs": BUDGETS[DEFAULT_TARGET]["fast"]["epochs"]}
    assert full["epochs"] > fast["epochs"] and full["lr"] == fast["lr"]
    assert kit_n_train(fast=True) == BUDGETS[DEFAULT_TARGET]["fast"]["n_train"] and kit_n_train(fast=False) is None


def test_recipes_follow_fast_mode_when_not_told(monkeypatch):
    monkeypatch.setenv("ADAPTERTUNE_FAST", "1")
    assert kit_recipe("head_only", "mnist5k") == kit_recipe("head_only", "mnist5k", fast=True)
    monkeypatch.setenv("ADAPTERTUNE_FAST", "0")
    assert kit_n_train("mnist5k") is None


@pytest.mark.parametrize("call, words", [(lambda: kit_recipe("lora"), "head_only"), (lambda: kit_n_train("cifar10"), "left_digit")])
def test_unknown_names_list_the_choices(call, words):
    with pytest.raises(ValueError, match=words):
        call()
