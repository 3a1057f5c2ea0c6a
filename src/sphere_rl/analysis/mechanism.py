"""The mechanism study's analysis: does the spectrum collapse without SPHERE, and does the proxy
track the eNTK?

Two questions, both answered from the ``diag`` records of run directories:

* **Collapse.** r_e(K) and r_e(A) (the proxy) over a continual sequence, measured on probe states
  fixed for the whole run (``diag_fixed_probe``, keys ``fixed/…``), so values are comparable across
  task boundaries. Runs are grouped into *variants*: the method plus, for SPHERE, its mode and ρ
  (``sphere grad ρ=0.01``), since a strength sweep shares one method name.
* **Proxy.** Pearson r between r_e(A_last^exp) and r_e(K) over every (checkpoint, probe batch)
  pair; the paper's project page reports r = 0.846 on h1_run batches.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sphere_rl.analysis.bootstrap import Interval, bootstrap_ci
from sphere_rl.analysis.runs import RunData

RANK = "entk/effective_rank"
PROXY = "proxy/effective_rank"
FIXED = "fixed/"


def variant_label(config: dict[str, Any]) -> str:
    """A run's method, with SPHERE's mode and strength when the regularizer is SPHERE."""
    method = config["method"]
    reg = config.get("reg")
    uses_sphere = (reg is None and method == "sphere") or (reg is not None and "sphere" in reg)
    if not uses_sphere:
        return method if reg is None else f"{method} +{reg}"
    return f"{method} {config.get('sphere_mode', 'grad')} ρ={config.get('rho'):g}"


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation of two equal-length samples; NaN with fewer than 3 points or a constant
    sample (the coefficient is undefined there)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.shape != y.shape:
        raise ValueError(f"pearson needs samples of equal length, got {x.size} and {y.size}")
    if x.size < 3:
        return float("nan")
    dx, dy = x - x.mean(), y - y.mean()
    denom = np.sqrt((dx * dx).sum() * (dy * dy).sum())
    return float((dx * dy).sum() / denom) if denom > 0 else float("nan")


@dataclass(frozen=True)
class ProxyCorrelation:
    """Pearson r between r_e(A) and r_e(K) over ``n`` (checkpoint, probe batch) points."""

    r: float
    n: int
    proxy: np.ndarray  # (n,) r_e(A) values
    rank: np.ndarray  # (n,) r_e(K) values


def proxy_correlation(
    runs: Iterable[RunData], prefixes: Sequence[str] = ("", FIXED)
) -> ProxyCorrelation:
    """Pool every diagnostic record of ``runs`` on the given probe batches (``""``: each task's
    own probe, ``"fixed/"``: the run-wide one) and correlate the proxy with the eNTK rank."""
    pairs = [
        (record[prefix + PROXY], record[prefix + RANK])
        for run in runs
        for record in run.diags
        for prefix in prefixes
        if record.get(prefix + PROXY) is not None and record.get(prefix + RANK) is not None
    ]
    proxy = np.array([p for p, _ in pairs], float)
    rank = np.array([k for _, k in pairs], float)
    return ProxyCorrelation(pearson(proxy, rank), len(pairs), proxy, rank)


@dataclass(frozen=True)
class VariantSpectrum:
    """One variant's spectral summary across seeds (each field: one interval over seeds)."""

    label: str
    seeds: int
    initial: Interval  # first diagnostic of the run
    final: Interval  # last diagnostic of the run
    minimum: Interval  # lowest value seen during the run
    change: Interval  # final − initial
    task_end: list[Interval]  # value at the end of each task


def group_by_variant(runs: Iterable[RunData]) -> dict[str, list[RunData]]:
    """Runs grouped by :func:`variant_label`, groups in first-seen order."""
    groups: dict[str, list[RunData]] = defaultdict(list)
    for run in runs:
        groups[variant_label(run.config)].append(run)
    return dict(groups)


def spectrum_summary(
    runs: Iterable[RunData], key: str = FIXED + RANK, reps: int = 2_000
) -> list[VariantSpectrum]:
    """Per variant: initial, final, minimum, change and per-task-end values of ``key``, each the
    mean over seeds with a 95% bootstrap interval. Runs that never logged ``key`` are skipped."""
    summaries = []
    for label, group in group_by_variant(runs).items():
        series = [run.diag_series(key)[1] for run in group]
        series = [values for values in series if values.size]
        if not series:
            continue
        ends = [run.diag_at_task_ends(key) for run in group]
        n_tasks = max(len(e) for e in ends)
        task_end = [
            bootstrap_ci([e[i] if i < len(e) else np.nan for e in ends], reps=reps)
            for i in range(n_tasks)
        ]
        summaries.append(
            VariantSpectrum(
                label=label,
                seeds=len(series),
                initial=bootstrap_ci([v[0] for v in series], reps=reps),
                final=bootstrap_ci([v[-1] for v in series], reps=reps),
                minimum=bootstrap_ci([v.min() for v in series], reps=reps),
                change=bootstrap_ci([v[-1] - v[0] for v in series], reps=reps),
                task_end=task_end,
            )
        )
    return summaries


def spectrum_markdown(summaries: Sequence[VariantSpectrum], title: str) -> str:
    """A Markdown table of :func:`spectrum_summary` (intervals are 95% bootstrap CIs over seeds;
    with fewer than 3 seeds they only show the spread)."""
    n_tasks = max((len(s.task_end) for s in summaries), default=0)
    header = ["variant", "seeds", "initial", *[f"end of task {i + 1}" for i in range(n_tasks)]]
    header += ["minimum", "final − initial"]
    lines = [f"**{title}**", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "---|" * len(header))
    for s in summaries:
        ends = [s.task_end[i].format(1) if i < len(s.task_end) else "—" for i in range(n_tasks)]
        cells = [s.label, str(s.seeds), s.initial.format(1), *ends, s.minimum.format(1)]
        cells.append(s.change.format(1))
        lines.append("| " + " | ".join(cells) + " |")
    if any(s.seeds < 3 for s in summaries):
        lines += [
            "",
            "Rows with fewer than 3 seeds: the bracket is the bootstrap spread, not a CI.",
        ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------- figures
def plot_spectrum(
    runs: Sequence[RunData], path, prefix: str = FIXED, formats: Sequence[str] = ("png", "svg")
) -> Path:
    """r_e(K) and r_e(A) on the run-wide probe over training: seed mean per variant with a
    min–max band, task boundaries labelled with the task trained next. Returns the first file."""
    import matplotlib.pyplot as plt

    from sphere_rl.analysis.plots import save_figure, seed_mean

    groups = group_by_variant(runs)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), squeeze=False)
    titles = {RANK: "r_e(K), eNTK effective rank", PROXY: "r_e(A), SPHERE proxy"}
    for ax, key in zip(axes[0], (RANK, PROXY), strict=True):
        for label, group in groups.items():
            xs, mean, low, high = seed_mean([run.diag_series(prefix + key) for run in group])
            if xs.size:
                (line,) = ax.plot(xs, mean, marker="o", ms=2.5, label=f"{label} ({len(group)})")
                ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.15, lw=0)
        first = next(iter(groups.values()))[0] if groups else None
        if first is not None:
            for i, task in enumerate(first.tasks):
                x = i * first.steps_per_task
                if i:
                    ax.axvline(x, color="0.6", lw=0.8, ls="--")
                ax.text(x, 1.01, task.removesuffix("-v3"), transform=ax.get_xaxis_transform(),
                        fontsize=6, rotation=20, va="bottom")  # fmt: skip
        ax.set_xlabel("env steps")
        ax.set_ylabel("effective rank")
        ax.set_title(titles[key] + (" (run-wide probe)" if prefix else ""), fontsize=9, pad=30)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:  # right of the axes: save_figure's tight bounding box takes it in, nothing overlaps
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7,
                   title="variant (seeds)", title_fontsize=7)  # fmt: skip
    return save_figure(fig, path, formats)


def plot_proxy_scatter(
    corr: ProxyCorrelation, path, formats: Sequence[str] = ("png", "svg")
) -> Path:
    """r_e(A) against r_e(K) over every diagnostic point, with Pearson r in the title."""
    import matplotlib.pyplot as plt

    from sphere_rl.analysis.plots import save_figure

    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    ax.scatter(corr.proxy, corr.rank, s=8, alpha=0.6)
    ax.set_xlabel("r_e(A_last^exp)  (proxy)")
    ax.set_ylabel("r_e(K)  (eNTK)")
    ax.set_title(f"Pearson r = {corr.r:.3f} over {corr.n} points (paper: 0.846)", fontsize=9)
    return save_figure(fig, path, formats)
