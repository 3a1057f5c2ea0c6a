"""Figures people would rather look at than read: success per task over a sequence, spectral
plasticity over training with task boundaries marked, RL-vs-CRL bars and routing-load heatmaps.

The ``plot_*`` functions on :class:`RunData` draw single runs (used by ``sphere demo``); the
``plot_*`` functions on :class:`ExperimentSummary` draw seed means per method (``sphere report``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
import numpy as np

from sphere_rl.analysis.bootstrap import Interval
from sphere_rl.analysis.runs import RunData
from sphere_rl.analysis.summary import PROXY_KEY, RANK_KEY, ExperimentSummary

PLASTICITY_KEYS = (RANK_KEY, PROXY_KEY)
_TITLES = {RANK_KEY: "r_e(K)  (eNTK effective rank)", PROXY_KEY: "r_e(A)  (SPHERE proxy)"}
_PROTOCOL_COLORS = {"rl": "0.65", "crl": "tab:blue"}


def _task_boundaries(ax, run: RunData) -> None:
    for i in range(1, len(run.tasks)):
        ax.axvline(i * run.steps_per_task, color="0.7", lw=0.8, ls="--")


def _task_curve(run: RunData, task: int) -> tuple[np.ndarray, np.ndarray]:
    """Success on ``task`` over the whole sequence (every evaluation of it)."""
    points = sorted(
        (r["global_step"], r["success"]) for r in run.evals if r["eval_task_index"] == task
    )
    return np.array([p[0] for p in points], float), np.array([p[1] for p in points], float)


def seed_mean(series: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
    """Align per-seed ``(steps, values)`` on their union of steps: ``(steps, mean, min, max)``
    over the seeds that logged each step."""
    steps = np.unique(np.concatenate([s for s, _ in series])) if series else np.zeros(0)
    table = np.full((len(series), steps.size), np.nan)
    for row, (s, v) in enumerate(series):
        table[row, np.searchsorted(steps, s)] = v
    with np.errstate(all="ignore"):
        return steps, np.nanmean(table, 0), np.nanmin(table, 0), np.nanmax(table, 0)


# ------------------------------------------------------------------------------- single runs
def plot_success(runs: Sequence[RunData], path: Path) -> Path:
    """One panel per run: success on every task over the whole sequence."""
    fig, axes = plt.subplots(len(runs), 1, figsize=(8, 2.6 * len(runs)), squeeze=False, sharex=True)
    for ax, run in zip(axes[:, 0], runs, strict=True):
        for j, task in enumerate(run.tasks):
            xs, ys = _task_curve(run, j)
            if xs.size:
                ax.plot(xs, ys, marker="o", ms=3, label=task)
        _style_success_axis(ax, run, run.name)
    axes[-1, 0].set_xlabel("env steps")
    return _save(fig, path)


def plot_plasticity(
    runs: Sequence[RunData], path: Path, keys: Sequence[str] = PLASTICITY_KEYS
) -> Path:
    """r_e(K) and the SPHERE proxy r_e(A) over training, one line per run."""
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        for run in runs:
            xs, ys = run.diag_series(key)
            if xs.size:
                ax.plot(xs, ys, marker="o", ms=3, label=run.name)
        if runs:
            _task_boundaries(ax, runs[0])
        _style_rank_axis(ax, key)
    return _save(fig, path)


# ------------------------------------------------------------------------------- seed means
def plot_success_by_method(experiments: Sequence[ExperimentSummary], path: Path) -> Path:
    """One panel per method (same sequence and protocol): seed-mean success of every task over
    the whole sequence."""
    fig, axes = plt.subplots(
        len(experiments), 1, figsize=(8, 2.6 * len(experiments)), squeeze=False, sharex=True
    )
    for ax, exp in zip(axes[:, 0], experiments, strict=True):
        runs = [m.run for m in exp.runs]
        for j, task in enumerate(exp.tasks):
            xs, mean, _, _ = seed_mean([_task_curve(run, j) for run in runs])
            if xs.size:
                ax.plot(xs, mean, marker="o", ms=3, label=task)
        title = f"{exp.label}: {exp.protocol.upper()} on {exp.sequence} ({len(runs)} seeds)"
        _style_success_axis(ax, runs[0], title)
    axes[-1, 0].set_xlabel("env steps")
    return _save(fig, path)


def plot_plasticity_by_method(
    experiments: Sequence[ExperimentSummary], path: Path, keys: Sequence[str] = PLASTICITY_KEYS
) -> Path:
    """r_e(K) and the SPHERE proxy over training: seed mean per method, min–max band across
    seeds, task boundaries dashed."""
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        for exp in experiments:
            xs, mean, low, high = seed_mean([m.run.diag_series(key) for m in exp.runs])
            if xs.size:
                (line,) = ax.plot(xs, mean, marker="o", ms=3, label=exp.label)
                ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2, lw=0)
        if experiments:
            _task_boundaries(ax, experiments[0].runs[0].run)
        _style_rank_axis(ax, key)
    return _save(fig, path)


def plot_rl_vs_crl(experiments: Sequence[ExperimentSummary], path: Path) -> Path:
    """Average success per method under RL (from scratch) and CRL (continual), with 95% CIs: the
    layout of the SPHERE paper's main figure."""
    labels = sorted({e.label for e in experiments}, key=lambda s: (s != "ppo", s))
    protocols = [p for p in ("rl", "crl") if any(e.protocol == p for e in experiments)]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(labels) + 1.5), 3.4))
    width = 0.8 / max(1, len(protocols))
    for k, protocol in enumerate(protocols):
        found = {
            e.label: e.intervals["average_success"] for e in experiments if e.protocol == protocol
        }
        xs = np.arange(len(labels)) + (k - (len(protocols) - 1) / 2) * width
        means, errors = _bar_heights([found.get(label) for label in labels])
        ax.bar(xs, means, width, yerr=errors, capsize=3, label=protocol.upper(),
               color=_PROTOCOL_COLORS[protocol])  # fmt: skip
    ax.set_xticks(np.arange(len(labels)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("average success")
    sequence = experiments[0].sequence if experiments else ""
    ax.set_title(f"RL vs CRL on {sequence}", fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _bar_heights(intervals: Sequence[Interval | None]) -> tuple[np.ndarray, np.ndarray]:
    """Bar heights and ``(2, n)`` asymmetric error bars; a missing bar is NaN (not drawn)."""
    means = np.array([np.nan if i is None else i.mean for i in intervals])
    errors = np.array([[0.0, 0.0] if i is None else [i.mean - i.low, i.high - i.mean]
                       for i in intervals])  # fmt: skip
    return means, errors.T


def plot_routing_heatmaps(experiments: Sequence[ExperimentSummary], path: Path) -> Path:
    """Routing load of each expert over training (seed mean), one heatmap per MoE method."""
    panel_height = 1.0 + 0.25 * _max_experts(experiments)
    fig, axes = plt.subplots(
        len(experiments), 1, figsize=(8, panel_height * len(experiments)), squeeze=False
    )
    for ax, exp in zip(axes[:, 0], experiments, strict=True):
        keys = exp.runs[0].run.routing_keys()
        rows = [seed_mean([m.run.diag_series(k) for m in exp.runs]) for k in keys]
        steps = rows[0][0]
        load = np.array([r[1] for r in rows])
        image = ax.pcolormesh(_cell_edges(steps), np.arange(len(keys) + 1), load,
                              cmap="viridis", vmin=0.0, shading="flat")  # fmt: skip
        _task_boundaries(ax, exp.runs[0].run)
        ax.set_yticks(np.arange(len(keys)) + 0.5, [str(e) for e in range(len(keys))], fontsize=7)
        ax.set_ylabel("expert")
        ax.set_title(f"{exp.label}: {exp.protocol.upper()} routing load", fontsize=9)
        fig.colorbar(image, ax=ax, label="load")
    axes[-1, 0].set_xlabel("env steps")
    return _save(fig, path)


def _max_experts(experiments: Sequence[ExperimentSummary]) -> int:
    return max((len(e.runs[0].run.routing_keys()) for e in experiments), default=1)


def _cell_edges(steps: np.ndarray) -> np.ndarray:
    """Edges of one heatmap column per diagnostic: each covers the steps since the previous one
    (the first, from step 0)."""
    return np.concatenate([[0.0], steps]) if steps.size else np.zeros(1)


def _style_success_axis(ax, run: RunData, title: str) -> None:
    _task_boundaries(ax, run)
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel("success")
    ax.set_title(title, fontsize=9)
    _legend(ax, fontsize=7, loc="upper left", ncol=2)


def _style_rank_axis(ax, key: str) -> None:
    ax.set_xlabel("env steps")
    ax.set_title(_TITLES.get(key, key), fontsize=10)
    _legend(ax, fontsize=7)


def _legend(ax, **kwargs) -> None:
    """A legend only where something was drawn (a dense method has no routing, a run may have no
    eNTK diagnostics), which matplotlib would otherwise warn about."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
