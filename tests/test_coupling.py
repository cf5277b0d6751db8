"""The rank-step-size coupling the course states is the one measured: one step's change grows like s·r under Adam and
like s²·r under SGD (so α/r keeps Adam's steady, α/√r keeps SGD's, and AdapterTune's fixed scale grows with r)."""

import pytest

import adaptertune_lite as at
from adaptertune_lite.course import coupling

REF = 4
ALPHA = {"alpha/r": REF, "alpha/sqrt(r)": REF ** 0.5, "fixed": 1.0}  # s = 1 at r = 4 for every convention


@pytest.fixture(scope="module")
def batch():
    backbone = at.load_backbone("kit_vit_tiny", num_classes=10)
    data = at.load_dataset("left_digit", backbone, n_train=32)
    return backbone, at.transforms.transform_for(backbone)(data.train.images[:32]), data.train.labels[:32]


@pytest.mark.parametrize("optimizer, lr", [("adam", 1e-4), ("sgd", 1e-2)])
def test_the_first_step_grows_with_the_rank_as_the_optimizers_law_says_and_not_as_the_other(batch, optimizer, lr):
    backbone, x, y = batch
    other = {"adam": "sgd", "sgd": "adam"}[optimizer]
    for scaling, alpha in ALPHA.items():
        growth = coupling.first_step_change(backbone, x, y, 64, scaling, alpha, optimizer, lr) / \
            coupling.first_step_change(backbone, x, y, 1, scaling, alpha, optimizer, lr)
        law, wrong = (coupling.predicted_growth(o, scaling, alpha, 1, 64) for o in (optimizer, other))
        assert 1 / 1.6 < growth / law < 1.6, f"{optimizer} {scaling}: measured {growth:.2f}, its law {law:.2f}"
        if law != wrong:  # the other law (s·r for s²·r or back) is off by a factor of 8 to 64 except where both agree
            assert not 1 / 1.6 < growth / wrong < 1.6, f"{optimizer} {scaling}: {growth:.2f} also fits the other law"


def test_the_steady_convention_is_alpha_over_r_under_adam_and_alpha_over_sqrt_r_under_sgd():
    assert coupling.steady_convention({s: coupling.predicted_growth("adam", s, a, 1, 64) for s, a in ALPHA.items()}) == "alpha/r"
    assert coupling.steady_convention({s: coupling.predicted_growth("sgd", s, a, 1, 64) for s, a in ALPHA.items()}) == "alpha/sqrt(r)"
    with pytest.raises(ValueError, match="adam, sgd"):
        coupling.first_step_change(None, None, None, 1, "fixed", 1.0, optimizer="rmsprop")
