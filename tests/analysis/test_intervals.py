"""Intervals of a method's mean over seeds (t, BCa, percentile), against scipy.stats."""

import math

import numpy as np
import pytest
from scipy import stats

from sphere_rl.analysis.intervals import check_method, seed_interval, seed_intervals


@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_t_interval_matches_scipy(n):
    x = np.random.default_rng(n).lognormal(0, 0.7, n)
    ci = seed_interval(x)  # the default
    expected = stats.ttest_1samp(x, 0).confidence_interval(0.95)
    assert ci.method == "t" and ci.n == n and ci.mean == pytest.approx(x.mean())
    assert (ci.low, ci.high) == pytest.approx((expected.low, expected.high), rel=1e-12)
    ci90 = seed_interval(x, confidence=0.9)
    assert (ci90.low, ci90.high) == pytest.approx(
        stats.t.interval(0.9, n - 1, loc=x.mean(), scale=stats.sem(x)), rel=1e-12
    )


def test_bca_matches_scipy_bootstrap():
    x = np.random.default_rng(4).exponential(1.0, 8)
    ci = seed_interval(x, "bca", reps=20_000)
    ref = stats.bootstrap((x,), np.mean, method="BCa", n_resamples=20_000, rng=1)
    width = ref.confidence_interval.high - ref.confidence_interval.low
    assert ci.low == pytest.approx(ref.confidence_interval.low, abs=0.05 * width)
    assert ci.high == pytest.approx(ref.confidence_interval.high, abs=0.05 * width)


@pytest.mark.parametrize("method", ["t", "bca", "percentile"])
def test_one_seed_has_no_interval_and_zero_spread_has_zero_width(method):
    one = seed_interval([0.3, math.nan], method, reps=200)
    assert one.n == 1 and one.mean == 0.3 and math.isnan(one.low) and math.isnan(one.high)
    assert one.format() == "0.30 (n=1)" and not one.is_ci
    flat = seed_interval([0.5, 0.5, 0.5], method, reps=200)
    assert (flat.low, flat.mean, flat.high) == pytest.approx((0.5, 0.5, 0.5))
    assert flat.format() == "0.50 [0.50, 0.50]"
    none = seed_interval([], method)
    assert none.n == 0 and none.format() == "—"


def test_columns_are_independent_and_nan_seeds_left_out():
    values = np.array([[0.1, 1.0], [0.4, np.nan], [0.3, 3.0], [0.9, 2.0]])
    cis = seed_intervals(values)
    assert [c.n for c in cis] == [4, 3]
    assert cis[1].mean == pytest.approx(2.0)
    assert cis[1].high - cis[1].mean == pytest.approx(stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3))


def test_t_interval_from_two_seeds_is_a_ci_a_bootstrap_is_not():
    assert seed_interval([0.2, 0.4]).is_ci and seed_interval([0.2, 0.4]).format().endswith("]")
    assert not seed_interval([0.2, 0.4], "bca", reps=100).is_ci


def test_unknown_method_names_the_choices():
    with pytest.raises(ValueError, match="t, bca, percentile"):
        check_method("normal")
