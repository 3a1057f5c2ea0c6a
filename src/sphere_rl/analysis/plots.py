"""Paper figures: success per task over a sequence, spectral plasticity per task, the RL-vs-CRL
bars, routing-load heatmaps and the r_e(K) transfer matrix.

Every figure follows the same rules, which the tests check on the figure objects and saved files:
method names (never run-directory names) in legends and titles; legends outside the axes, so they
never cover data; task names on a top axis at the task boundaries; a y-axis label on every axes;
curves broken (NaN) where a quantity was not measured instead of a line drawn across the gap.

Each ``draw_*`` function returns a :class:`matplotlib.figure.Figure`; each ``plot_*`` function draws
and saves it in every requested format (PNG at :data:`PNG_DPI`, PDF, SVG) and returns the path of
the first. ``plot_success``/``plot_plasticity`` draw single runs (``sphere demo``); the ``*_by_method``
functions draw seed means per method (``sphere report``).
"""

from __future__ import annotations

import io
import textwrap
import warnings
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from sphere_rl.analysis.bootstrap import Interval
from sphere_rl.analysis.intervals import METHOD_NAMES
from sphere_rl.analysis.runs import RunData
from sphere_rl.analysis.summary import PROXY_KEY, RANK_KEY, ExperimentSummary
from sphere_rl.continual.rundir import atomic_write_bytes

FORMATS = ("png", "pdf", "svg")
PNG_DPI = 220
PLASTICITY_KEYS = (RANK_KEY, PROXY_KEY)
_TITLES = {RANK_KEY: "r_e(K)  (eNTK effective rank)", PROXY_KEY: "r_e(A)  (SPHERE proxy)"}
_YLABELS = {RANK_KEY: "r_e(K)", PROXY_KEY: "r_e(A)"}
_PROTOCOL_COLORS = {"rl": "0.65", "crl": "tab:blue"}
_PROTOCOL_EDGES = {"rl": "0.25", "crl": "navy"}
_TITLE_WIDTH = 70  # characters per title line: long custom sequences wrap instead of clipping


# ------------------------------------------------------------------------------- series
def scheduled_steps(run: RunData, interval_key: str) -> np.ndarray:
    """The global steps at which the runner evaluates (``eval_interval``) or diagnoses
    (``diag_interval``): every iteration that crosses a multiple of the interval, except a task's
    last, plus every task end. Empty when the configuration lacks the keys."""
    cfg = run.config
    try:
        per_iteration, interval = cfg["num_envs"] * cfg["num_steps"], int(cfg[interval_key])
    except (KeyError, TypeError, ValueError):
        return np.zeros(0)
    if interval <= 0 or per_iteration <= 0:
        return np.zeros(0)
    length = run.steps_per_task
    within = np.arange(per_iteration, length, per_iteration)
    crossed = within[within // interval > (within - per_iteration) // interval]
    starts = np.arange(len(run.tasks))[:, None] * length
    return np.sort(np.concatenate([(starts + crossed).ravel(), starts[:, 0] + length]))


def eval_grid(run: RunData) -> np.ndarray:
    """Every global step at which the run evaluated, or was scheduled to, sorted: a scheduled
    evaluation that is missing from the log becomes a NaN (a gap in the curve), not a silent
    straight line between its neighbours."""
    logged = np.array([r["global_step"] for r in run.evals], dtype=float)
    return np.union1d(logged, scheduled_steps(run, "eval_interval"))


def task_success_on_grid(run: RunData, task: int) -> tuple[np.ndarray, np.ndarray]:
    """Success on ``task`` at every evaluation step of the run, NaN where ``task`` was not
    evaluated (CRL evaluates a future task only at task ends): ``(steps, success)``.

    The NaNs break the plotted line, so no line is drawn across evaluations that did not happen.
    """
    steps = eval_grid(run)
    values = np.full(steps.size, np.nan)
    for r in run.evals:
        if r["eval_task_index"] == task:
            values[np.searchsorted(steps, r["global_step"])] = r["success"]
    return steps, values


def diag_segment(run: RunData, key: str, task: int) -> tuple[np.ndarray, np.ndarray]:
    """``key`` at every diagnostic logged while ``task`` was trained (on that task's own probe
    batch), NaN where the diagnostic lacks ``key``: ``(steps, values)``."""
    rows = [r for r in run.diags if r.get("task_index") == task]
    steps = np.array([r["global_step"] for r in rows], dtype=float)
    values = np.array([np.nan if r.get(key) is None else r[key] for r in rows], dtype=float)
    return steps, values


def seed_mean(series: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
    """Align per-seed ``(steps, values)`` on their union of steps: ``(steps, mean, min, max)``
    over the seeds that have a (non-NaN) value at each step; NaN where none has."""
    steps = np.unique(np.concatenate([s for s, _ in series])) if series else np.zeros(0)
    table = np.full((len(series), steps.size), np.nan)
    for row, (s, v) in enumerate(series):
        table[row, np.searchsorted(steps, s)] = v
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: no seed measured
        return steps, np.nanmean(table, 0), np.nanmin(table, 0), np.nanmax(table, 0)


# ------------------------------------------------------------------------------- single runs
def run_labels(runs: Sequence[RunData]) -> list[str]:
    """Legend labels for single runs: the method name, plus protocol and seed only where two runs
    would otherwise share a label."""
    labels = [r.method for r in runs]
    if len(set(labels)) < len(labels):
        labels = [f"{r.method} ({r.protocol.upper()}, seed {r.seed})" for r in runs]
    return labels


def draw_success(runs: Sequence[RunData]) -> Figure:
    """One panel per run (titled by its method): success on every task over the sequence."""
    labels = run_labels(runs)
    fig, axes = plt.subplots(len(runs), 1, figsize=(8, 2.6 * len(runs)), squeeze=False, sharex=True)
    for ax, run, label in zip(axes[:, 0], runs, labels, strict=True):
        for j, task in enumerate(run.tasks):
            xs, ys = task_success_on_grid(run, j)
            if np.isfinite(ys).any():
                ax.plot(xs, ys, marker="o", ms=3, label=task, color=_task_color(j))
        _style_success_axis(ax, f"{label}: {run.protocol.upper()}")
        _task_axis(ax, run.tasks, run.steps_per_task, names=ax is axes[0, 0])
    _outside_legend(axes[0, 0], title="task")
    axes[-1, 0].set_xlabel("env steps")
    return fig


def plot_success(runs: Sequence[RunData], path: Path, formats: Sequence[str] = FORMATS) -> Path:
    """Save :func:`draw_success`; returns the first file written."""
    return save_figure(draw_success(runs), path, formats)


def draw_plasticity(runs: Sequence[RunData], keys: Sequence[str] = PLASTICITY_KEYS) -> Figure:
    """r_e(K) and the SPHERE proxy r_e(A) over training, one colour per run, one segment per task
    (each task is measured on its own probe batch)."""
    labels = run_labels(runs)
    fig, axes = plt.subplots(1, len(keys), figsize=(5.2 * len(keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        for k, (run, label) in enumerate(zip(runs, labels, strict=True)):
            series = [[diag_segment(run, key, t)] for t in range(len(run.tasks))]
            _draw_segments(ax, series, label, f"C{k}", band=False)
        if runs:
            _task_axis(ax, runs[0].tasks, runs[0].steps_per_task)
        _style_rank_axis(ax, key)
    _outside_legend(axes[0, -1], title="method")
    return fig


def plot_plasticity(
    runs: Sequence[RunData],
    path: Path,
    keys: Sequence[str] = PLASTICITY_KEYS,
    formats: Sequence[str] = FORMATS,
) -> Path:
    """Save :func:`draw_plasticity`; returns the first file written."""
    return save_figure(draw_plasticity(runs, keys), path, formats)


# ------------------------------------------------------------------------------- seed means
def draw_success_by_method(experiments: Sequence[ExperimentSummary]) -> Figure:
    """One panel per method (same sequence and protocol): seed-mean success of every task at each
    evaluation, broken where the task was not evaluated."""
    fig, axes = plt.subplots(
        len(experiments), 1, figsize=(8, 2.6 * len(experiments)), squeeze=False, sharex=True
    )
    for ax, exp in zip(axes[:, 0], experiments, strict=True):
        runs = [m.run for m in exp.runs]
        for j, task in enumerate(exp.tasks):
            xs, mean, _, _ = seed_mean([task_success_on_grid(run, j) for run in runs])
            if np.isfinite(mean).any():
                ax.plot(xs, mean, marker="o", ms=3, label=task, color=_task_color(j))
        seeds = f"{len(runs)} seed{'s' if len(runs) > 1 else ''}"
        _style_success_axis(ax, f"{exp.label}: {exp.protocol.upper()} ({seeds})")
        _task_axis(ax, exp.tasks, runs[0].steps_per_task, names=ax is axes[0, 0])
    first = experiments[0]
    fig.suptitle(_wrap(f"Success per task on {first.sequence}"), fontsize=10)
    _outside_legend(axes[0, 0], title="task")
    axes[-1, 0].set_xlabel("env steps")
    return fig


def plot_success_by_method(
    experiments: Sequence[ExperimentSummary], path: Path, formats: Sequence[str] = FORMATS
) -> Path:
    return save_figure(draw_success_by_method(experiments), path, formats)


def draw_plasticity_by_method(
    experiments: Sequence[ExperimentSummary], keys: Sequence[str] = PLASTICITY_KEYS
) -> Figure:
    """r_e(K) and the SPHERE proxy over training: seed mean per method (one colour), min–max band
    across seeds, one separate segment per task: each task's values are measured on that task's
    probe batch, so values of different tasks are not joined as if they were comparable."""
    fig, axes = plt.subplots(1, len(keys), figsize=(5.2 * len(keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        for k, exp in enumerate(experiments):
            series = [
                [diag_segment(m.run, key, t) for m in exp.runs] for t in range(len(exp.tasks))
            ]
            _draw_segments(ax, series, exp.label, f"C{k}", band=len(exp.runs) > 1)
        if experiments:
            first = experiments[0]
            _task_axis(ax, first.tasks, first.runs[0].run.steps_per_task)
        _style_rank_axis(ax, key)
    if experiments:
        exp = experiments[0]
        fig.suptitle(_wrap(f"Spectral plasticity, {exp.protocol.upper()} on {exp.sequence}"),
                     fontsize=10)  # fmt: skip
    _outside_legend(axes[0, -1], title="method")
    return fig


def plot_plasticity_by_method(
    experiments: Sequence[ExperimentSummary],
    path: Path,
    keys: Sequence[str] = PLASTICITY_KEYS,
    formats: Sequence[str] = FORMATS,
) -> Path:
    return save_figure(draw_plasticity_by_method(experiments, keys), path, formats)


def _draw_segments(ax, per_task_series, label: str, color: str, band: bool) -> None:
    """One line per task (seed mean of that task's series), all in ``color``, labelled once."""
    labelled = False
    for series in per_task_series:
        series = [s for s in series if s[0].size]
        if not series:
            continue
        xs, mean, low, high = seed_mean(series)
        if not np.isfinite(mean).any():
            continue
        ax.plot(xs, mean, marker="o", ms=3, color=color,
                label="_nolegend_" if labelled else label, gid="segment")  # fmt: skip
        if band:
            ax.fill_between(xs, low, high, color=color, alpha=0.2, lw=0)
        labelled = True


def draw_rl_vs_crl(experiments: Sequence[ExperimentSummary]) -> Figure:
    """Average success per method under RL (from scratch) and CRL (continual): the layout of the
    SPHERE paper's main figure.

    Bars are seed means with their value and seed count written above; whiskers (the intervals'
    own method, named with the seed counts in the legend) only where there is more than one seed;
    a bar of height zero is drawn as a thick mark at zero so that it is seen, not mistaken for a
    missing method.
    """
    labels = sorted({e.label for e in experiments}, key=lambda s: (s != "ppo", s))
    protocols = [p for p in ("rl", "crl") if any(e.protocol == p for e in experiments)]
    fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(labels) * len(protocols) + 2.0), 3.6))
    width = 0.8 / max(1, len(protocols))
    for k, protocol in enumerate(protocols):
        found = {
            e.label: e.intervals["average_success"] for e in experiments if e.protocol == protocol
        }
        xs = np.arange(len(labels)) + (k - (len(protocols) - 1) / 2) * width
        _draw_bars(ax, xs, [found.get(label) for label in labels], width, protocol)
    label = whisker_label([e.intervals["average_success"] for e in experiments])
    if label:  # an empty line in the legend that says what the whiskers are
        ax.errorbar([], [], yerr=[], fmt="none", ecolor="black", capsize=3, lw=1, label=label)
    ax.set_xticks(np.arange(len(labels)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_ylim(-0.03, 1.15)  # room below for the zero marks, above for the value labels
    ax.axhline(0, color="0.3", lw=0.6)
    ax.set_ylabel("average success")
    ax.set_xlabel("method")
    sequence = experiments[0].sequence if experiments else ""
    ax.set_title(_wrap(f"Average success, RL vs CRL on {sequence}"), fontsize=10)
    _outside_legend(ax, title="protocol")
    return fig


def whisker_label(intervals: Sequence[Interval]) -> str:
    """What whiskers drawn from ``intervals`` are, with the seeds behind them, e.g.
    ``"whiskers: 95% t-interval, n = 3 seeds"``; empty when no interval has two seeds."""
    drawn = [iv for iv in intervals if iv.defined and iv.n > 1]
    if not drawn:
        return ""
    ns = ", ".join(str(n) for n in sorted({iv.n for iv in drawn}))
    methods = sorted({iv.method for iv in drawn})
    names = " / ".join(METHOD_NAMES.get(m, m) for m in methods)
    if all(iv.is_ci for iv in drawn):
        return f"whiskers: 95% {names},\nn = {ns} seeds"
    return f"whiskers: {names}\n(not a 95% CI where n < 3),\nn = {ns} seeds"


def plot_rl_vs_crl(
    experiments: Sequence[ExperimentSummary], path: Path, formats: Sequence[str] = FORMATS
) -> Path:
    return save_figure(draw_rl_vs_crl(experiments), path, formats)


def _draw_bars(ax, xs: np.ndarray, intervals: Sequence[Interval | None], width: float,
               protocol: str) -> None:  # fmt: skip
    present = [i for i, iv in enumerate(intervals) if iv is not None and iv.defined]
    if not present:
        return
    x = xs[present]
    means = np.array([intervals[i].mean for i in present])
    ax.bar(x, means, width, color=_PROTOCOL_COLORS[protocol], edgecolor=_PROTOCOL_EDGES[protocol],
           linewidth=0.8, label=protocol.upper(), gid=f"bars-{protocol}")  # fmt: skip
    zero = np.isclose(means, 0.0)
    if zero.any():
        ax.hlines(np.zeros(zero.sum()), x[zero] - width / 2, x[zero] + width / 2, lw=3,
                  colors=_PROTOCOL_EDGES[protocol], gid=f"zero-bars-{protocol}")  # fmt: skip
    multi = np.array([intervals[i].n > 1 for i in present])
    tops = means.copy()
    if multi.any():
        ivals = [intervals[i] for i, m in zip(present, multi, strict=True) if m]
        errors = np.array([[iv.mean - iv.low, iv.high - iv.mean] for iv in ivals]).T
        whiskers = ax.errorbar(x[multi], means[multi], yerr=errors, fmt="none", ecolor="black",
                               capsize=3, lw=1)  # fmt: skip
        for artist in whiskers.lines[2]:  # the vertical lines (their ids survive into SVG)
            artist.set_gid(f"whiskers-{protocol}")
        tops[multi] = [iv.high for iv in ivals]
    ns = [intervals[i].n for i in present]
    for xi, top, mean, n in zip(x, np.minimum(tops, 1.02), means, ns, strict=True):
        ax.text(xi, top + 0.015, f"{mean:.2f}\nn={n}", ha="center", va="bottom", fontsize=6,
                gid="value-label")  # fmt: skip


def draw_routing_heatmaps(experiments: Sequence[ExperimentSummary]) -> Figure:
    """Routing load of each expert over training (seed mean), one heatmap per MoE method."""
    panel_height = 1.3 + 0.25 * _max_experts(experiments)
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
        run = exp.runs[0].run
        _task_axis(ax, run.tasks, run.steps_per_task, names=ax is axes[0, 0])
        ax.set_yticks(np.arange(len(keys)) + 0.5, [str(e) for e in range(len(keys))], fontsize=7)
        ax.set_ylabel("expert")
        ax.set_title(f"{exp.label}: {exp.protocol.upper()} routing load", fontsize=9)
        fig.colorbar(image, ax=ax, label="mean routing weight")
    axes[-1, 0].set_xlabel("env steps")
    return fig


def plot_routing_heatmaps(
    experiments: Sequence[ExperimentSummary], path: Path, formats: Sequence[str] = FORMATS
) -> Path:
    return save_figure(draw_routing_heatmaps(experiments), path, formats)


def draw_entk_matrices(panels: Sequence[tuple[str, list[str], np.ndarray]]) -> Figure:
    """Heatmaps of ``matrix[i, j]`` = r_e(K) of the checkpoint after task ``i`` on task ``j``'s
    probe states, one panel per ``(title, tasks, matrix)``; NaN cells (not computed) are blank."""
    n = max(len(tasks) for _, tasks, _ in panels)
    size = 1.6 + 0.45 * n
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels) + 1.2, size + 0.6),
                             squeeze=False)  # fmt: skip
    finite = np.concatenate([m[np.isfinite(m)] for _, _, m in panels])
    vmin, vmax = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    for ax, (title, tasks, matrix) in zip(axes[0], panels, strict=True):
        image = ax.imshow(np.ma.masked_invalid(matrix), cmap="magma", vmin=vmin, vmax=vmax)
        for (i, j), value in np.ndenumerate(matrix):
            if np.isfinite(value):
                light = value < vmin + 0.5 * (vmax - vmin)
                ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=7,
                        color="white" if light else "black")  # fmt: skip
        ticks = np.arange(len(tasks))
        ax.set_xticks(ticks, tasks, rotation=40, ha="right", fontsize=7)
        ax.set_yticks(ticks, tasks, fontsize=7)
        ax.set_xlabel("probe states of task j")
        ax.set_ylabel("checkpoint after task i")
        ax.set_title(title, fontsize=9)
        fig.colorbar(image, ax=ax, label="r_e(K)", shrink=0.8)
    return fig


def plot_entk_matrices(
    panels: Sequence[tuple[str, list[str], np.ndarray]],
    path: Path,
    formats: Sequence[str] = FORMATS,
) -> Path:
    return save_figure(draw_entk_matrices(panels), path, formats)


def _max_experts(experiments: Sequence[ExperimentSummary]) -> int:
    return max((len(e.runs[0].run.routing_keys()) for e in experiments), default=1)


def _cell_edges(steps: np.ndarray) -> np.ndarray:
    """Edges of one heatmap column per diagnostic: each covers the steps since the previous one
    (the first, from step 0)."""
    return np.concatenate([[0.0], steps]) if steps.size else np.zeros(1)


# ------------------------------------------------------------------------------- styling
def _task_color(j: int):
    return plt.get_cmap("tab10" if j < 10 else "tab20")(j % 20)


def _task_axis(ax, tasks: Sequence[str], steps_per_task: int, names: bool = True) -> None:
    """Dashed lines at the task boundaries and (``names``) on a top axis each task's name at the
    boundary where it starts."""
    starts = [i * steps_per_task for i in range(len(tasks))]
    for x in starts[1:]:
        ax.axvline(x, color="0.7", lw=0.8, ls="--")
    ax.set_xlim(0, len(tasks) * steps_per_task * 1.01)
    if not names:
        return
    top = ax.secondary_xaxis("top")
    top.set_xticks(starts, list(tasks), rotation=30, ha="left", fontsize=7)
    top.tick_params(axis="x", length=3, pad=1)
    top.set_gid("task-axis")


def _style_success_axis(ax, title: str) -> None:
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel("success")
    ax.set_title(_wrap(title), fontsize=9)


def _style_rank_axis(ax, key: str) -> None:
    ax.set_xlabel("env steps")
    ax.set_ylabel(_YLABELS.get(key, key))
    ax.set_title(_TITLES.get(key, key), fontsize=10)


def _outside_legend(ax, **kwargs) -> None:
    """A legend to the right of the axes, where it cannot cover data; only where something was
    drawn (matplotlib would otherwise warn)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=7,
                  title_fontsize=7, frameon=False, **kwargs)  # fmt: skip


def _wrap(title: str) -> str:
    return "\n".join(textwrap.wrap(title, _TITLE_WIDTH, break_on_hyphens=False)) or title


def save_figure(fig: Figure, path: Path, formats: Sequence[str] = FORMATS) -> Path:
    """Write ``fig`` once per format next to ``path`` (its suffix is replaced), atomically, with a
    bounding box that takes in titles and outside legends; closes the figure. Returns the file of
    the first format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    written = []
    for fmt in formats:
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=PNG_DPI, bbox_inches="tight", pad_inches=0.08,
                    metadata=_metadata(fmt))  # fmt: skip
        target = path.with_suffix(f".{fmt}")
        atomic_write_bytes(target, buffer.getvalue())
        written.append(target)
    plt.close(fig)
    return written[0]


def _metadata(fmt: str) -> dict | None:
    # A fixed date keeps PDF/SVG output byte-identical across report runs.
    return {"pdf": {"CreationDate": None}, "svg": {"Date": None}}.get(fmt)
