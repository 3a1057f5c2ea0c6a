"""Differences between methods: Welch's interval and p, and the permutation test."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from sphere_rl.analysis.differences import check_test, difference, permutation_p, welch_difference


@pytest.mark.parametrize(("n_a", "n_b"), [(3, 3), (3, 5), (10, 4)])
def test_welch_matches_scipy(n_a, n_b):
    rng = np.random.default_rng(n_a * 10 + n_b)
    a, b = rng.normal(0.6, 0.1, n_a), rng.normal(0.5, 0.3, n_b)
    d = welch_difference(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert d.diff == pytest.approx(a.mean() - b.mean())
    assert d.p == pytest.approx(ref.pvalue, rel=1e-10)
    assert (d.low, d.high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert (d.n_a, d.n_b) == (n_a, n_b)


def test_welch_edge_cases():
    one = welch_difference([0.5], [0.1, 0.2, math.nan])
    assert one.diff == pytest.approx(0.35) and math.isnan(one.p) and one.n_b == 2
    assert one.format() == "+0.35"
    flat = welch_difference([0.5, 0.5], [0.5, 0.5, 0.5])
    assert (flat.low, flat.high, flat.p) == (0.0, 0.0, 1.0)


def _brute_force_p(a, b):
    """Every relabelling, written out with Python sets (independent of the vectorised code)."""
    pooled = list(a) + list(b)
    observed = abs(np.mean(a) - np.mean(b))
    count = total = 0
    for chosen in itertools.combinations(range(len(pooled)), len(a)):
        rest = [pooled[i] for i in range(len(pooled)) if i not in set(chosen)]
        total += 1
        count += abs(np.mean([pooled[i] for i in chosen]) - np.mean(rest)) >= observed - 1e-12
    return count / total


def test_permutation_p_is_exact_for_few_seeds():
    a, b = [0.9, 0.8, 0.85], [0.5, 0.6, 0.55]
    assert permutation_p(a, b) == pytest.approx(_brute_force_p(a, b))
    assert permutation_p(a, b) == pytest.approx(2 / 20)  # the two most extreme of C(6,3)=20
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 5), rng.normal(0.5, 1, 4)
    assert permutation_p(a, b) == pytest.approx(_brute_force_p(a, b))


def test_permutation_p_sampled_for_many_seeds_agrees_with_scipy():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 12), rng.normal(0.8, 1, 12)  # C(24,12) ≈ 2.7e6: sampled
    ref = stats.permutation_test((a, b), lambda x, y: np.mean(x) - np.mean(y),
                                 n_resamples=20_000, rng=0).pvalue  # fmt: skip
    assert permutation_p(a, b) == pytest.approx(ref, abs=0.01)


def test_difference_chooses_the_test():
    a, b = [0.9, 0.8, 0.85], [0.5, 0.6, 0.55]
    perm = difference(a, b, "permutation")
    assert perm.test == "permutation" and perm.p == pytest.approx(0.1)
    assert (perm.low, perm.high) == (difference(a, b).low, difference(a, b).high)
    with pytest.raises(ValueError, match="welch, permutation"):
        check_test("mannwhitney")
