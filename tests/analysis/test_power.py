"""Power of the two-sample t-test, checked against statsmodels' TTestIndPower (an independent
implementation) and against a simulation."""

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import TTestIndPower

from sphere_rl.analysis.power import detectable_difference, power, seeds_needed


@pytest.mark.parametrize("n,delta,sd", [(3, 0.5, 0.3), (10, 0.2, 0.35), (40, 0.1, 0.3)])
def test_power_matches_statsmodels(n, delta, sd):
    expected = TTestIndPower().power(effect_size=delta / sd, nobs1=n, alpha=0.05, ratio=1.0)
    assert power(n, delta, sd) == pytest.approx(expected, abs=1e-9)


def test_power_matches_a_simulation():
    rng = np.random.default_rng(0)
    a = rng.normal(0.3, 0.25, size=(4000, 8))
    b = rng.normal(0.0, 0.25, size=(4000, 8))
    rejected = stats.ttest_ind(a, b, axis=1).pvalue < 0.05
    assert power(8, 0.3, 0.25) == pytest.approx(rejected.mean(), abs=0.025)


@pytest.mark.parametrize("delta,sd", [(0.1, 0.33), (0.2, 0.33), (0.45, 0.33), (1.0, 0.5)])
def test_seeds_needed_is_the_first_n_reaching_80_percent(delta, sd):
    n = seeds_needed(delta, sd)
    assert power(n, delta, sd) >= 0.8 > (power(n - 1, delta, sd) if n > 2 else 0.0)
    solved = TTestIndPower().solve_power(effect_size=delta / sd, alpha=0.05, power=0.8)
    assert n == int(np.ceil(solved - 1e-9))


def test_detectable_difference_inverts_power():
    d = detectable_difference(10, 0.33)
    assert power(10, d, 0.33) == pytest.approx(0.8, abs=1e-8)
    expected = TTestIndPower().solve_power(nobs1=10, alpha=0.05, power=0.8) * 0.33
    assert d == pytest.approx(expected, rel=1e-6)


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="at least 2 seeds"):
        power(1, 0.1, 0.3)
    with pytest.raises(ValueError, match="delta != 0"):
        seeds_needed(0.0, 0.3)
