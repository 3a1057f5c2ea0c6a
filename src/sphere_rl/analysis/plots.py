"""Figures people would rather look at than read: success per task over a sequence, and spectral
plasticity over training, with task boundaries marked."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt

from sphere_rl.analysis.runs import RunData


def _task_boundaries(ax, run: RunData) -> None:
    for i in range(1, len(run.tasks)):
        ax.axvline(i * run.steps_per_task, color="0.7", lw=0.8, ls="--")


def plot_success(runs: Sequence[RunData], path: Path) -> Path:
    """One panel per run: success on every task over the whole sequence."""
    fig, axes = plt.subplots(len(runs), 1, figsize=(8, 2.6 * len(runs)), squeeze=False, sharex=True)
    for ax, run in zip(axes[:, 0], runs, strict=True):
        for j, task in enumerate(run.tasks):
            points = sorted(
                (r["global_step"], r["success"]) for r in run.evals if r["eval_task_index"] == j
            )
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", ms=3, label=task)
        _task_boundaries(ax, run)
        ax.set_ylim(-0.05, 1.05)
        ax.set_ylabel("success")
        ax.set_title(run.name, fontsize=9)
        ax.legend(fontsize=7, loc="upper left", ncol=2)
    axes[-1, 0].set_xlabel("env steps")
    return _save(fig, path)


def plot_plasticity(
    runs: Sequence[RunData],
    path: Path,
    keys: Sequence[str] = ("entk/effective_rank", "proxy/effective_rank"),
) -> Path:
    """r_e(K) and the SPHERE proxy r_e(A) over training, one line per run."""
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        for run in runs:
            points = [(r["global_step"], r[key]) for r in run.diags if key in r]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", ms=3, label=run.name)
        if runs:
            _task_boundaries(ax, runs[0])
        ax.set_xlabel("env steps")
        ax.set_title(key, fontsize=10)
        ax.legend(fontsize=7)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
