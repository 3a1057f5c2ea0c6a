"""Bootstrap confidence intervals across seeds, computed with ``rliable`` (Agarwal et al., 2021).

Each aggregate (average success, forgetting, ...) is already one number per seed, so the bootstrap
resamples seeds: rliable's percentile interval over ``(n_seeds, k)`` scores (one column per
quantity, resampled independently), with a fixed seed so a report is reproducible. (rliable 1.2
needs ``arch<8``, which imports only with pandas < 3: hence the pandas pin.)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

DEFAULT_REPS = 5_000  # arch's bootstrap costs ~0.1 ms per replicate
# Below this many seeds a bootstrap cannot cover the mean at its nominal level (with two seeds it
# only spans them): tables then mark the interval and say it is not a confidence interval. The
# t-interval is a confidence interval from two seeds on (exact for normal data, if very wide).
MIN_CI_SEEDS = 3
MIN_T_SEEDS = 2
NOT_A_CI_MARK = "†"


@dataclass(frozen=True)
class Interval:
    """A point estimate (the mean over seeds) with a confidence interval ``[low, high]`` (NaN
    bounds with a single seed)."""

    mean: float
    low: float
    high: float
    n: int  # seeds behind the estimate
    # how [low, high] was computed: t, bca, percentile, welch (a difference), stratified bootstrap
    method: str = "percentile"

    @property
    def defined(self) -> bool:
        return not math.isnan(self.mean)

    @property
    def is_ci(self) -> bool:
        """Whether ``[low, high]`` deserves the name 95% confidence interval (enough seeds)."""
        t_based = self.method in ("t", "welch")
        return self.defined and self.n >= (MIN_T_SEEDS if t_based else MIN_CI_SEEDS)

    def format(self, digits: int = 2) -> str:
        """``mean [low, high]``; ``mean (n=1)`` for one seed; ``†`` after a bootstrap interval
        from fewer than :data:`MIN_CI_SEEDS` seeds (a bootstrap range, not a confidence
        interval)."""
        if not self.defined:
            return "—"
        point = f"{self.mean:.{digits}f}"
        if self.n < 2:  # one seed: no spread, no interval
            return f"{point} (n=1)"
        mark = "" if self.is_ci else NOT_A_CI_MARK
        return f"{point} [{self.low:.{digits}f}, {self.high:.{digits}f}]{mark}"


def bootstrap_ci(
    values, confidence: float = 0.95, reps: int = DEFAULT_REPS, seed: int = 0
) -> Interval:
    """Mean of per-seed ``values`` and its percentile-bootstrap confidence interval.

    Seeds are the resampled unit: each replicate draws ``n`` seeds with replacement and averages
    them. NaN values (a metric undefined for that seed) are left out. With one seed the bounds are
    NaN (no interval); with none everything is NaN.
    """
    values = np.asarray(values, dtype=float).reshape(-1, 1)
    return bootstrap_cis(values, confidence, reps, seed)[0]


def bootstrap_cis(
    values, confidence: float = 0.95, reps: int = DEFAULT_REPS, seed: int = 0
) -> list[Interval]:
    """:func:`bootstrap_ci` of every column of ``values`` ``(n_seeds, k)``, in few rliable calls.

    Columns with the same defined (non-NaN) seeds share one call of rliable's stratified
    bootstrap, which resamples the seeds of each column independently: the per-column intervals
    are those of separate bootstraps, at the cost of one (a report has hundreds of cells).
    """
    values = np.asarray(values, dtype=float)
    out: list[Interval | None] = [None] * values.shape[1]
    groups: dict[bytes, list[int]] = {}
    for col in range(values.shape[1]):
        groups.setdefault(np.isfinite(values[:, col]).tobytes(), []).append(col)
    for mask_bytes, cols in groups.items():
        defined = values[np.frombuffer(mask_bytes, dtype=bool)][:, cols]
        n = defined.shape[0]
        means = defined.mean(axis=0) if n else np.full(len(cols), math.nan)
        if n < 2:  # no seed, or one: no spread to resample
            for col, mean in zip(cols, means, strict=True):
                out[col] = Interval(float(mean), math.nan, math.nan, n)
            continue
        low, high = _rliable_percentile(defined, confidence, reps, seed)
        for k, col in enumerate(cols):
            out[col] = Interval(float(means[k]), float(low[k]), float(high[k]), n)
    return out  # type: ignore[return-value]


def _rliable_percentile(scores: np.ndarray, confidence: float, reps: int, seed: int):
    """rliable's percentile interval of the column means of ``scores`` ``(n, k)``."""
    from rliable import library as rly  # imported lazily: it pulls in arch and statsmodels

    # rliable draws its resampling indices from NumPy's global generator (not from the
    # random_state it is given): seed it for reproducibility, and restore it so callers' random
    # streams are untouched.
    saved = np.random.get_state()  # noqa: NPY002 (the global generator is what rliable uses)
    np.random.seed(seed)  # noqa: NPY002
    try:
        with warnings.catch_warnings():  # rliable passes arch a RandomState the old way
            warnings.simplefilter("ignore", FutureWarning)
            _, intervals = rly.get_interval_estimates(
                {"x": scores},
                lambda s: s.mean(axis=0),
                reps=reps,
                confidence_interval_size=confidence,
                random_state=np.random.RandomState(seed),
            )
    finally:
        np.random.set_state(saved)  # noqa: NPY002
    return intervals["x"][0], intervals["x"][1]
