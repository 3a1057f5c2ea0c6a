"""Simulated coverage of the default interval (Student-t) of a method's mean over seeds.

Data families, chosen to look like what a report averages over seeds:

* ``normal``: the t-interval is exact here (a check of the simulation itself);
* ``gamma(k=4)``: moderately right-skewed (skewness 1), like returns or effective ranks;
* ``beta(2,5)``: bounded in [0, 1] and skewed, like a success rate far from 0.5;
* ``success of 10 episodes``: the mean of 10 Bernoulli evaluation episodes, p = 0.7 (discrete,
  bounded, ties): how a task's success is measured;
* ``average over 10 tasks``: average success over 10 tasks whose success probabilities vary by
  seed (Beta(2, 2)), 10 episodes each: the report's headline number.

The default must cover ≥ 0.93 at n = 3, 5 and 10 on all of them. Not among them, and said here
rather than hidden: strongly skewed data (exponential, skewness 2) — there the t-interval covers
only ~0.88 at n = 3–5 (``test_strongly_skewed_data_is_where_t_undercovers`` prints it), and the
percentile bootstrap does worse still. ``pytest -s`` prints every coverage, the percentile
bootstrap's beside the default's.
"""

import numpy as np
import pytest

from sphere_rl.analysis.intervals import seed_intervals

REPLICATIONS = 20_000  # standard error of a coverage near 0.95: 0.0015
BOOTSTRAP_REPLICATIONS = 1_000  # percentile bootstrap, for comparison only (slower)


def _draw(family: str, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    if family == "normal":
        return rng.normal(0.5, 0.1, shape)
    if family == "gamma(k=4)":
        return rng.gamma(4.0, 1.0, shape)
    if family == "beta(2,5)":
        return rng.beta(2.0, 5.0, shape)
    if family == "success of 10 episodes":
        return rng.binomial(10, 0.7, shape) / 10
    if family == "average over 10 tasks":
        p = rng.beta(2.0, 2.0, (*shape, 10))
        return (rng.binomial(10, p) / 10).mean(axis=-1)
    if family == "exponential":
        return rng.exponential(1.0, shape)
    raise ValueError(family)


TRUE_MEAN = {"normal": 0.5, "gamma(k=4)": 4.0, "beta(2,5)": 2 / 7, "success of 10 episodes": 0.7,
             "average over 10 tasks": 0.5, "exponential": 1.0}  # fmt: skip


def coverage(family: str, n: int, method: str, replications: int, seed: int) -> float:
    """Share of ``replications`` simulated experiments of ``n`` seeds whose 95% interval (one
    column each, computed in one call) holds the true mean."""
    values = _draw(family, np.random.default_rng(seed), (n, replications))
    cis = seed_intervals(values, method, reps=1_000)
    return float(np.mean([ci.low <= TRUE_MEAN[family] <= ci.high for ci in cis]))


@pytest.mark.parametrize("n", [3, 5, 10])
@pytest.mark.parametrize("family", ["normal", "gamma(k=4)", "beta(2,5)", "success of 10 episodes",
                                    "average over 10 tasks"])  # fmt: skip
def test_default_interval_covers_at_least_93_percent(family, n):
    t = coverage(family, n, "t", REPLICATIONS, seed=n)
    percentile = coverage(family, n, "percentile", BOOTSTRAP_REPLICATIONS, seed=100 + n)
    print(f"\n{family:>24} n={n:<2}  t-interval {t:.3f}   percentile bootstrap {percentile:.3f}")
    assert t >= 0.93


def test_strongly_skewed_data_is_where_t_undercovers():
    # Documented, not hidden: the t-interval is no 95% interval for exponential data at few seeds.
    for n in (3, 5, 10):
        t = coverage("exponential", n, "t", REPLICATIONS, seed=n)
        print(f"\n{'exponential':>24} n={n:<2}  t-interval {t:.3f}")
        assert 0.85 <= t < 0.93
