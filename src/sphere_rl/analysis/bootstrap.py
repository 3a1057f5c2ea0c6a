"""Bootstrap confidence intervals across seeds, computed with ``rliable`` (Agarwal et al., 2021).

Each aggregate (average success, forgetting, ...) is already one number per seed, so the bootstrap
resamples seeds: rliable's percentile interval over ``(n_seeds, 1)`` scores, with a fixed
``RandomState`` so a report is reproducible. (rliable 1.2 needs ``arch<8``, which imports only with
pandas < 3: hence the pandas pin.)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

DEFAULT_REPS = 5_000  # arch's bootstrap costs ~0.1 ms per replicate


@dataclass(frozen=True)
class Interval:
    """A point estimate (the mean over seeds) with a confidence interval ``[low, high]``."""

    mean: float
    low: float
    high: float
    n: int  # seeds behind the estimate

    @property
    def defined(self) -> bool:
        return not math.isnan(self.mean)

    def format(self, digits: int = 2) -> str:
        if not self.defined:
            return "—"
        point = f"{self.mean:.{digits}f}"
        if self.n < 2:  # one seed: no spread to resample
            return point
        return f"{point} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def bootstrap_ci(
    values, confidence: float = 0.95, reps: int = DEFAULT_REPS, seed: int = 0
) -> Interval:
    """Mean of per-seed ``values`` and its percentile-bootstrap confidence interval.

    Seeds are the resampled unit: each replicate draws ``n`` seeds with replacement and averages
    them. NaN values (a metric undefined for that seed) are left out. With one seed the interval
    collapses to the point; with none everything is NaN.
    """
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    n = values.size
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(values.mean())
    if n == 1:
        return Interval(mean, mean, mean, 1)
    from rliable import library as rly  # imported lazily: it pulls in arch and statsmodels

    with warnings.catch_warnings():  # rliable passes arch a RandomState the old way
        warnings.simplefilter("ignore", FutureWarning)
        _, intervals = rly.get_interval_estimates(
            {"x": values.reshape(n, 1)},
            lambda scores: np.array([scores.mean()]),
            reps=reps,
            confidence_interval_size=confidence,
            random_state=np.random.RandomState(seed),
        )
    low, high = intervals["x"][:, 0]
    return Interval(mean, float(low), float(high), n)
