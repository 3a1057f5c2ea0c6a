"""Statistical power of comparing two methods over seeds: how many seeds detect a difference.

The comparison is the two-sided two-sample t-test at level ``alpha`` with ``n`` seeds per method
and a common per-seed standard deviation ``sd`` (Welch's test has about this power when the two
spreads are alike). Its power for a true difference ``delta`` comes from the noncentral t
distribution with ``2n − 2`` degrees of freedom and noncentrality ``delta / (sd · √(2/n))``.
"""

from __future__ import annotations

import math

from scipy import optimize, stats


def power(n: int, delta: float, sd: float, alpha: float = 0.05) -> float:
    """Probability that the two-sided t-test with ``n`` seeds per method rejects at ``alpha``
    when the means differ by ``delta`` and each seed's value has standard deviation ``sd``."""
    if n < 2:
        raise ValueError(f"power needs at least 2 seeds per method, got {n}")
    if sd <= 0:
        raise ValueError(f"the per-seed standard deviation must be > 0, got {sd}")
    df = 2 * n - 2
    ncp = abs(delta) / (sd * math.sqrt(2 / n))
    critical = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(critical, df, ncp) + stats.nct.cdf(-critical, df, ncp))


def seeds_needed(
    delta: float, sd: float, target: float = 0.8, alpha: float = 0.05, limit: int = 100_000
) -> int:
    """The fewest seeds per method whose :func:`power` reaches ``target`` (at least 2)."""
    if delta == 0:
        raise ValueError("a difference of 0 cannot be detected; give delta != 0")
    low, high = 2, 2
    while power(high, delta, sd, alpha) < target:
        low, high = high, high * 2
        if high > limit:
            raise ValueError(f"more than {limit} seeds per method would be needed")
    while low < high:  # power grows with n: bisect for the first n that reaches the target
        mid = (low + high) // 2
        if power(mid, delta, sd, alpha) >= target:
            high = mid
        else:
            low = mid + 1
    return high


def detectable_difference(n: int, sd: float, target: float = 0.8, alpha: float = 0.05) -> float:
    """The smallest difference that ``n`` seeds per method detect with power ``target``."""
    return float(
        optimize.brentq(
            lambda d: power(n, d, sd, alpha) - target,
            1e-9 * sd,
            _upper(n, sd, target, alpha),
            xtol=1e-10,
        )
    )


def _upper(n: int, sd: float, target: float, alpha: float) -> float:
    """A difference whose power exceeds ``target`` (the noncentral t is NaN far out: grow)."""
    high = sd
    while power(n, high, sd, alpha) < target:
        high *= 2
    return high
