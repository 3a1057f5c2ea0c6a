"""Continual-learning metrics as small pure functions of success numbers.

Conventions: ``matrix[i, j]`` is the success on task ``j`` evaluated at the end of training task
``i`` (:meth:`RunData.task_end_matrix`), NaN where not evaluated. Definitions follow the SPHERE
paper (average success) and Continual World (Wołczyk et al., 2021: average performance,
forgetting, forward transfer); ``docs/report.md`` states every choice made where they are silent.
"""

from __future__ import annotations

import numpy as np


def own_end_success(matrix: np.ndarray) -> np.ndarray:
    """Success on each task at the end of its own training: the diagonal."""
    return np.diagonal(np.asarray(matrix, dtype=float)).copy()


def average_success(matrix: np.ndarray, tasks: int | None = None) -> float:
    """The SPHERE paper's metric: for each task, success at the end of its own training, averaged
    over tasks. Defined for both protocols (RL evaluates only the task being trained).

    Args:
        tasks: average over the first ``tasks`` tasks only (a partial run's finished ones).
    """
    return _mean(own_end_success(matrix)[:tasks])


def average_performance(matrix: np.ndarray) -> float:
    """Continual World's average performance: mean success over all tasks after the last task.
    NaN unless every task was evaluated at the end (the CRL protocol, finished)."""
    return float(np.mean(np.asarray(matrix, dtype=float)[-1]))


def forgetting_per_task(matrix: np.ndarray) -> np.ndarray:
    """``F_i = matrix[i, i] - matrix[-1, i]`` for every task but the last (which cannot have been
    forgotten yet)."""
    matrix = np.asarray(matrix, dtype=float)
    return own_end_success(matrix)[:-1] - matrix[-1, :-1]


def forgetting(matrix: np.ndarray) -> float:
    """Continual World's forgetting: ``F_i`` averaged over all tasks but the last."""
    return _mean(forgetting_per_task(matrix))


def curve_auc(steps: np.ndarray, success: np.ndarray, task_length: float) -> float:
    """Area under a task's success curve over its training, normalised to ``[0, 1]``.

    Each evaluation stands for the interval since the previous one (the first, for the interval
    from the task's start): ``Σ_k s_k (x_k - x_{k-1}) / L`` with ``x_0 = 0``. With evaluations
    evenly spaced up to the task end this is the mean of the evaluations, Continual World's
    estimate, and it needs no evaluation of the untrained network at step 0. NaN unless the last
    evaluation is at the task's end (the task finished).
    """
    steps, success = np.asarray(steps, dtype=float), np.asarray(success, dtype=float)
    if steps.size == 0 or not np.isclose(steps[-1], task_length):
        return float("nan")
    widths = np.diff(steps, prepend=0.0)
    return float(np.sum(success * widths) / task_length)


def forward_transfer_per_task(auc: np.ndarray, auc_reference: np.ndarray) -> np.ndarray:
    """``FT_i = (AUC_i - AUC_i^ref) / (1 - AUC_i^ref)``; NaN where the reference already solved
    the task from the first evaluation on (``AUC^ref = 1``: no room to transfer into)."""
    auc, ref = np.asarray(auc, dtype=float), np.asarray(auc_reference, dtype=float)
    room = 1.0 - ref
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isclose(room, 0.0), np.nan, (auc - ref) / room)


def forward_transfer(auc: np.ndarray, auc_reference: np.ndarray) -> float:
    """Continual World's forward transfer: ``FT_i`` averaged over tasks (undefined ones left
    out)."""
    return nanmean(forward_transfer_per_task(auc, auc_reference))


def _mean(values: np.ndarray) -> float:
    """Mean that is NaN when any value is missing: a metric over tasks needs every task."""
    values = np.asarray(values, dtype=float)
    return float(np.mean(values)) if values.size else float("nan")


def nanmean(values: np.ndarray) -> float:
    """Mean of the defined values; NaN (without a warning) when there are none."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    return float(np.mean(values)) if values.size else float("nan")
