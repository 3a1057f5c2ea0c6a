"""Bootstrap confidence intervals across seeds (rliable)."""
# ruff: noqa: NPY002  (rliable resamples with NumPy's global generator: the tests must touch it)

import math

import numpy as np
import pytest

from sphere_rl.analysis.bootstrap import bootstrap_ci, bootstrap_cis


def test_interval_contains_the_true_mean_in_a_simulated_experiment():
    rng = np.random.default_rng(123)
    seeds = rng.normal(0.5, 0.1, size=5)  # five seeds of an experiment whose true mean is 0.5
    ci = bootstrap_ci(seeds)
    assert ci.low < 0.5 < ci.high
    assert ci.low < ci.mean < ci.high and ci.n == 5
    assert ci.mean == np.mean(seeds)


def test_coverage_is_close_to_nominal():
    # Over many simulated experiments, the 95% interval holds the true mean most of the time
    # (a percentile bootstrap on 10 seeds under-covers a little).
    # 300 experiments of 10 seeds, one column each: resampled independently in one call.
    rng = np.random.default_rng(7)
    hits = [
        ci.low <= 0.5 <= ci.high for ci in bootstrap_cis(rng.uniform(0, 1, (10, 300)), reps=500)
    ]
    assert 0.86 <= np.mean(hits) <= 0.99


def test_fixed_seed_is_reproducible_and_edge_cases():
    values = [0.1, 0.4, 0.35, 0.8]
    first, second = bootstrap_ci(values), bootstrap_ci(values)
    # Same seed, same interval (up to float summation order inside arch's resampling).
    assert (first.low, first.high) == pytest.approx((second.low, second.high), abs=1e-12)
    assert math.isnan(bootstrap_ci([0.3]).low) and math.isnan(bootstrap_ci([0.3]).high)
    assert bootstrap_ci([0.3]).format() == "0.30 (n=1)"
    assert bootstrap_ci([0.2, float("nan"), 0.4]).n == 2  # undefined seeds are left out
    empty = bootstrap_ci([])
    assert math.isnan(empty.mean) and empty.format() == "—"
    assert bootstrap_ci([0.5, 0.5, 0.5]).format() == "0.50 [0.50, 0.50]"


def _oracle(values: np.ndarray, reps: int = 20_000) -> tuple[float, float]:
    """Percentile bootstrap of the mean, written independently of rliable."""
    rng = np.random.default_rng(99)
    means = values[rng.integers(0, values.size, size=(reps, values.size))].mean(axis=1)
    return tuple(np.percentile(means, [2.5, 97.5]))


def test_batched_columns_match_an_independent_bootstrap():
    rng = np.random.default_rng(3)
    values = rng.uniform(0, 1, size=(8, 5)) * np.arange(1, 6)  # columns with different spreads
    values[2, 4] = np.nan  # one seed undefined in one column: its own group, 7 seeds
    cis = bootstrap_cis(values, reps=4_000)
    for col, ci in enumerate(cis):
        column = values[:, col][~np.isnan(values[:, col])]
        assert ci.n == column.size and ci.mean == pytest.approx(column.mean())
        low, high = _oracle(column)
        width = high - low
        assert ci.low == pytest.approx(low, abs=0.06 * width)
        assert ci.high == pytest.approx(high, abs=0.06 * width)
    # Columns are resampled independently: not one shared resample (which would make the
    # intervals of proportional columns exactly proportional).
    scaled = bootstrap_cis(np.column_stack([values[:, 0], 2 * values[:, 0]]), reps=2_000)
    assert scaled[1].low != pytest.approx(2 * scaled[0].low, rel=1e-9)


def test_reproducible_and_leaves_the_global_generator_alone():
    values = np.random.default_rng(5).normal(size=6)  # continuous: every resample mean distinct
    np.random.seed(1)
    state = np.random.get_state()[1].copy()
    first = bootstrap_ci(values, reps=1_000)
    assert (np.random.get_state()[1] == state).all()  # callers' random streams are untouched
    np.random.uniform(size=10)  # whatever happens to the global generator in between
    second = bootstrap_ci(values, reps=1_000)
    assert (first.low, first.high) == (second.low, second.high)
    assert bootstrap_ci(values, reps=1_000, seed=1).low != first.low


def test_too_few_seeds_are_not_a_confidence_interval():
    assert not bootstrap_ci([0.2, 0.4]).is_ci and bootstrap_ci([0.2, 0.4, 0.5]).is_ci
    assert bootstrap_ci([0.2, 0.4]).format().endswith("]†")
    assert not bootstrap_ci([0.2]).is_ci and bootstrap_ci([0.2]).format() == "0.20 (n=1)"
