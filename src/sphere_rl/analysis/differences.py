"""Differences between two methods' means over seeds, with their own interval and p-value.

Two tests, each on per-seed values of method A ``(n_a,)`` and of the reference B ``(n_b,)``
(NaN seeds left out):

* **Welch** (default): ``mean_a − mean_b`` with the Welch–Satterthwaite t interval and the
  two-sided p of Welch's t-test (unequal variances), as ``scipy.stats.ttest_ind(equal_var=False)``.
* **Permutation**: the two-sided p of the difference of means under random relabelling of the
  seeds, by exact enumeration of all ``C(n_a + n_b, n_a)`` splits when there are at most
  :data:`EXACT_LIMIT` (every report with ≤ 8 seeds per method), else by ``reps`` random
  relabellings (p counts the observed split, so it is never 0). Its interval is Welch's: a
  permutation test gives a p, not an interval.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

TESTS = ("welch", "permutation")
EXACT_LIMIT = 20_000  # splits enumerated exactly (C(16, 8) = 12,870)


@dataclass(frozen=True)
class Difference:
    """``mean_a − mean_b`` with a confidence interval and a two-sided p-value."""

    diff: float
    low: float
    high: float
    p: float
    n_a: int
    n_b: int
    test: str = "welch"

    def format(self, digits: int = 2) -> str:
        """``diff [low, high]``; ``—`` when undefined (fewer than 2 seeds on a side)."""
        if math.isnan(self.diff):
            return "—"
        if math.isnan(self.low):
            return f"{self.diff:+.{digits}f}"
        return f"{self.diff:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


def check_test(test: str) -> str:
    """``test`` if it is one of :data:`TESTS`; ValueError naming the choices."""
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r} in --test; choose among {', '.join(TESTS)}")
    return test


def _finite(x) -> np.ndarray:
    x = np.asarray(x, dtype=float).ravel()
    return x[np.isfinite(x)]


def welch_difference(a, b, confidence: float = 0.95) -> Difference:
    """Welch's interval and p for ``mean(a) − mean(b)``; NaN where a side has < 2 seeds (no
    variance); a zero-width interval (p = 1 for equal means, 0 otherwise) when both sides have
    zero variance."""
    a, b = _finite(a), _finite(b)
    diff = float(a.mean() - b.mean()) if a.size and b.size else math.nan
    if a.size < 2 or b.size < 2:
        return Difference(diff, math.nan, math.nan, math.nan, a.size, b.size)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        return Difference(diff, diff, diff, 1.0 if diff == 0 else 0.0, a.size, b.size)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = stats.t.ppf(0.5 + confidence / 2, df) * se
    p = 2 * stats.t.sf(abs(diff) / se, df)
    return Difference(diff, diff - half, diff + half, float(p), a.size, b.size)


def permutation_p(a, b, reps: int = 20_000, seed: int = 0) -> float:
    """Two-sided permutation p-value of ``|mean(a) − mean(b)|`` (exact when few seeds)."""
    a, b = _finite(a), _finite(b)
    if not a.size or not b.size:
        return math.nan
    pooled, n_a = np.concatenate([a, b]), a.size
    observed = abs(a.mean() - b.mean())
    total = pooled.sum()
    if math.comb(pooled.size, n_a) <= EXACT_LIMIT:
        splits = np.array(list(itertools.combinations(range(pooled.size), n_a)))
        sums = pooled[splits].sum(axis=1)
        extra = 0
    else:
        rng = np.random.default_rng(seed)
        order = rng.permuted(np.tile(np.arange(pooled.size), (reps, 1)), axis=1)[:, :n_a]
        sums = pooled[order].sum(axis=1)
        extra = 1  # the observed split counts as one of the relabellings
    diffs = np.abs(sums / n_a - (total - sums) / b.size)
    tolerance = 1e-12 * max(1.0, observed)  # equal splits must count as "as extreme"
    hits = int(np.sum(diffs >= observed - tolerance))
    return (hits + extra) / (len(diffs) + extra)


def difference(a, b, test: str = "welch", confidence: float = 0.95) -> Difference:
    """:func:`welch_difference`, with the p of ``test`` (``welch`` or ``permutation``)."""
    result = welch_difference(a, b, confidence)
    if check_test(test) == "permutation":
        p = permutation_p(a, b) if result.n_a and result.n_b else math.nan
        return Difference(result.diff, result.low, result.high, p, result.n_a, result.n_b,
                          "permutation")  # fmt: skip
    return result
