"""The raw-pixel reference: a deterministic linear model that a linear probe on frozen features must beat."""

from adaptertune_lite.baselines import pixel_logreg


def test_pixel_logistic_regression_is_a_real_fit_and_repeats_exactly():
    first, again = pixel_logreg("digits", n_train=300), pixel_logreg("digits", n_train=300)
    assert first["test_acc"] == again["test_acc"]
    assert 0.8 < first["test_acc"] <= 1.0  # 8x8 digits are nearly linearly separable
    assert pixel_logreg("digits", n_train=20)["test_acc"] < first["test_acc"]  # it learns from the data it gets
