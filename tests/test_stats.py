"""Paired differences over seeds: a difference is called one only when its t interval excludes zero."""

import math

import pytest
from scipy import stats as scipy_stats

import adaptertune_lite as at
from adaptertune_lite.stats import paired_difference


def test_the_interval_is_the_students_t_interval_of_the_per_seed_differences():
    a, b = [0.90, 0.92, 0.91, 0.93], [0.88, 0.89, 0.90, 0.90]
    d = [x - y for x, y in zip(a, b)]
    res = paired_difference(a, b)
    low, high = scipy_stats.t.interval(0.95, len(d) - 1, loc=sum(d) / len(d), scale=scipy_stats.sem(d))
    assert (res.mean, res.low, res.high, res.n) == pytest.approx((sum(d) / len(d), low, high, 4))
    assert res.detected and "A is higher" in res.sentence("A", "B")


def test_pairing_removes_the_noise_the_seeds_share():
    """Seed effects of ±5 points hide nothing when both methods share them: a constant +1 is detected."""
    shared = [0.80, 0.90, 0.85]
    assert paired_difference([s + 0.01 for s in shared], shared).detected


def test_no_difference_is_called_when_seeds_cannot_tell():
    res = paired_difference([0.90, 0.86, 0.93], [0.89, 0.90, 0.88])
    assert not res.detected and res.low < 0 < res.high
    assert "no difference detected at this budget" in res.sentence("A", "B")


def test_fewer_than_three_seeds_never_make_a_difference():
    two = paired_difference([0.95, 0.96], [0.10, 0.11])
    assert not two.detected and "fewer than 3 seeds" in two.sentence("A", "B")
    one = paired_difference([0.95], [0.10])
    assert math.isnan(one.low) and not one.detected and "no interval" in one.sentence("A", "B")


def test_unpaired_input_fails_clearly():
    with pytest.raises(ValueError, match="equally long"):
        paired_difference([0.9, 0.8, 0.7], [0.9, 0.8])


def test_a_claim_prints_whether_it_holds_and_never_raises(capsys):
    assert at.course.claims.claim(True, "two is even") is True
    assert at.course.claims.claim(0 > 1, "zero exceeds one") is False  # a student's changed seed: reported, not raised
    assert capsys.readouterr().out.splitlines() == ["✓ two is even", f"{at.course.claims.FAILS} zero exceeds one"]
