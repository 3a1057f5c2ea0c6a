"""Aggregates over tasks × seeds (IQM, optimality gap, probability of improvement) against rliable."""
# ruff: noqa: NPY002  (rliable resamples with NumPy's global generator: the tests must seed it)

import warnings

import numpy as np
import pytest
from rliable import library as rly
from rliable import metrics

from sphere_rl.analysis.aggregates import aggregates, improvement, iqm, optimality_gap


def _scores(seed, n=5, tasks=10):
    rng = np.random.default_rng(seed)
    return rng.binomial(10, rng.beta(2, 2, tasks), size=(n, tasks)) / 10  # success rates


def _rliable(score_dict, func, reps=4_000):
    np.random.seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return rly.get_interval_estimates(score_dict, func, reps=reps,
                                          random_state=np.random.RandomState(0))  # fmt: skip


def test_point_estimates_equal_rliables():
    x, y = _scores(0), _scores(1, n=3)
    assert iqm(x) == pytest.approx(metrics.aggregate_iqm(x), rel=1e-12)
    assert optimality_gap(x) == pytest.approx(metrics.aggregate_optimality_gap(x, 1.0), rel=1e-12)
    agg = aggregates(x)
    assert agg.mean.mean == pytest.approx(metrics.aggregate_mean(x))
    assert agg.iqm.mean == pytest.approx(metrics.aggregate_iqm(x))
    assert improvement(x, y).mean == pytest.approx(metrics.probability_of_improvement(x, y))


def test_stratified_bootstrap_intervals_agree_with_rliable():
    x, y = _scores(2), _scores(3, n=4)
    agg = aggregates(x, reps=4_000)
    funcs = lambda s: np.array([metrics.aggregate_mean(s), metrics.aggregate_iqm(s),  # noqa: E731
                                metrics.aggregate_optimality_gap(s, 1.0)])  # fmt: skip
    _, cis = _rliable({"x": x}, funcs)
    for k, ours in enumerate((agg.mean, agg.iqm, agg.optimality_gap)):
        low, high = cis["x"][:, k]
        tol = 0.08 * (high - low)
        assert ours.low == pytest.approx(low, abs=tol) and ours.high == pytest.approx(high, abs=tol)
    poi = improvement(x, y, reps=4_000)
    _, cis = _rliable({"xy": [x, y]}, metrics.probability_of_improvement)
    low, high = cis["xy"][:, 0]
    assert poi.low == pytest.approx(low, abs=0.08 * (high - low))
    assert poi.high == pytest.approx(high, abs=0.08 * (high - low))
    assert poi.n == 4


def test_one_seed_has_no_interval():
    agg = aggregates(_scores(4, n=1))
    assert agg.iqm.n == 1 and np.isnan(agg.iqm.low) and agg.iqm.format().endswith("(n=1)")
