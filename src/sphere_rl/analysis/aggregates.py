"""Aggregates over tasks × seeds, as rliable recommends (Agarwal et al., 2021): interquartile
mean (IQM), optimality gap and probability of improvement, each with a stratified bootstrap CI.

Scores are ``(n_seeds, n_tasks)`` success rates in [0, 1] (NaN-free). The stratified bootstrap
resamples seeds with replacement *within each task* (tasks are the strata), as rliable's
``StratifiedBootstrap`` does; the interval is the percentile interval of the resampled statistic.
Written with NumPy so a report does not pay rliable's per-call cost; the tests check every point
estimate and interval against ``rliable``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from sphere_rl.analysis.bootstrap import Interval

METHOD = "stratified bootstrap"


def iqm(scores: np.ndarray) -> np.ndarray:
    """Interquartile mean of ``scores`` ``(..., n_seeds, n_tasks)``: the mean of the middle 50%
    of all seed × task scores, per leading index."""
    flat = scores.reshape(*scores.shape[:-2], -1)
    return stats.trim_mean(flat, 0.25, axis=-1)


def optimality_gap(scores: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """Mean shortfall below ``gamma`` (1 = every task solved) of ``(..., n_seeds, n_tasks)``."""
    return (gamma - np.minimum(scores, gamma)).mean(axis=(-2, -1))


def mean_score(scores: np.ndarray) -> np.ndarray:
    """Plain mean of ``(..., n_seeds, n_tasks)`` over seeds and tasks."""
    return scores.mean(axis=(-2, -1))


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + ½ P(X = Y) per task, averaged over tasks: ``x`` ``(..., n, T)`` against ``y``
    ``(..., m, T)`` (the Mann–Whitney U statistic over ``n·m`` per task)."""
    greater = x[..., :, None, :] > y[..., None, :, :]  # (..., n, m, T)
    ties = x[..., :, None, :] == y[..., None, :, :]
    return (greater + 0.5 * ties).mean(axis=(-3, -2)).mean(axis=-1)


def stratified_resample(scores: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """``(reps, n_seeds, n_tasks)``: per replicate and task, ``n_seeds`` seeds drawn with
    replacement from that task's column."""
    n, tasks = scores.shape
    idx = rng.integers(0, n, size=(reps, n, tasks))
    return np.take_along_axis(np.broadcast_to(scores, (reps, n, tasks)), idx, axis=1)


def _interval(point: float, replicates: np.ndarray, n: int, confidence: float) -> Interval:
    if n < 2:
        return Interval(float(point), np.nan, np.nan, n, METHOD)
    low, high = np.percentile(replicates, [50 - 50 * confidence, 50 + 50 * confidence])
    return Interval(float(point), float(low), float(high), n, METHOD)


@dataclass(frozen=True)
class Aggregates:
    """One method's aggregates over ``(n_seeds, n_tasks)`` scores (``n`` of each: seeds)."""

    mean: Interval
    iqm: Interval
    optimality_gap: Interval


def aggregates(
    scores: np.ndarray, reps: int = 2_000, confidence: float = 0.95, seed: int = 0
) -> Aggregates:
    """Mean, IQM and optimality gap of ``scores`` ``(n_seeds, n_tasks)`` with stratified
    bootstrap intervals (NaN bounds with one seed)."""
    scores = np.asarray(scores, dtype=float)
    boot = stratified_resample(scores, reps, np.random.default_rng(seed))
    n = scores.shape[0]
    return Aggregates(
        *(
            _interval(fn(scores), fn(boot), n, confidence)
            for fn in (mean_score, iqm, optimality_gap)
        )
    )


def improvement(
    x: np.ndarray, y: np.ndarray, reps: int = 2_000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """P(method ``x`` beats ``y`` on a random task), scores ``(n, T)`` and ``(m, T)`` on the same
    tasks, with a stratified bootstrap interval (both methods resampled independently); ``n`` of
    the interval is the smaller seed count."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    rng = np.random.default_rng(seed)
    boot = probability_of_improvement(
        stratified_resample(x, reps, rng), stratified_resample(y, reps, rng)
    )
    return _interval(probability_of_improvement(x, y), boot, min(len(x), len(y)), confidence)
