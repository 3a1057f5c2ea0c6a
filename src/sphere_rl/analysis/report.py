"""``sphere report``: run directories → tables (Markdown, CSV), figures (PNG) and one
self-contained HTML page.

Layout of the output directory::

    index.html          everything, images embedded (open it anywhere, mail it)
    report.md           the same tables, with links to the figures
    tables/*.csv        summary, per_task, runs, partial
    figures/*.png
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sphere_rl.analysis import plots
from sphere_rl.analysis.html import render_html
from sphere_rl.analysis.runs import RunLoadError, find_runs
from sphere_rl.analysis.summary import ExperimentSummary, Summary, summarize
from sphere_rl.analysis.tables import (
    Table,
    partial_table,
    per_task_table,
    runs_table,
    summary_table,
)


@dataclass(frozen=True)
class Figure:
    path: Path
    title: str
    caption: str


@dataclass
class Report:
    runs_dir: Path
    out: Path
    summary: Summary
    tables: list[Table]  # summary, per_task, runs, partial (in page order)
    figures: list[Figure] = field(default_factory=list)
    created: str = ""
    unreadable: list[str] = field(default_factory=list)  # runs left out: "path: problem"

    @property
    def n_runs(self) -> int:
        return sum(len(e.runs) for e in self.summary.experiments) + len(self.summary.partial)


def build_report(runs_dir: Path, out: Path, reps: int = 10_000) -> Report:
    """Read every run under ``runs_dir`` and write the report into ``out``.

    Raises:
        FileNotFoundError: when ``runs_dir`` holds no run directory.
    """
    runs_dir, out = Path(runs_dir), Path(out)
    unreadable: list[RunLoadError] = []
    runs = find_runs(runs_dir, unreadable)
    if not runs:
        bad = "".join(f"; unreadable: {err}" for err in unreadable)
        raise FileNotFoundError(f"no run directories (with a config.json) under {runs_dir}{bad}")
    summary = summarize(runs, reps=reps)
    all_metrics = [m for e in summary.experiments for m in e.runs] + summary.partial
    tables = [summary_table(summary), per_task_table(summary), runs_table(all_metrics)]
    tables.append(partial_table(summary))
    report = Report(runs_dir, out, summary, tables, created=time.strftime("%Y-%m-%d %H:%M:%S"),
                    unreadable=[str(err) for err in unreadable])  # fmt: skip
    report.figures = make_figures(summary.experiments, out / "figures")
    write_tables(report)
    (out / "index.html").write_text(render_html(report))
    return report


def make_figures(experiments: Sequence[ExperimentSummary], folder: Path) -> list[Figure]:
    """Every figure the experiments support, per sequence (and protocol where it matters)."""
    figures = []
    for sequence in sorted({e.sequence for e in experiments}):
        on_sequence = [e for e in experiments if e.sequence == sequence]
        stem = _file_stem(sequence)
        figures.append(
            _figure(plots.plot_rl_vs_crl, on_sequence, folder / f"rl_vs_crl_{stem}.png",
                    f"RL vs CRL average success on {sequence}",
                    "Average success per method (bars: mean over seeds; whiskers: 95% bootstrap CI)."
                    " RL trains each task from scratch; CRL trains one agent through the sequence.")
        )  # fmt: skip
        for protocol in ("crl", "rl"):
            group = [e for e in on_sequence if e.protocol == protocol]
            if not group:
                continue
            name, kind = f"{stem}_{protocol}", protocol.upper()
            figures.append(
                _figure(plots.plot_success_by_method, group, folder / f"success_{name}.png",
                        f"Success per task over the sequence ({kind}, {sequence})",
                        "Seed-mean success of every task at each evaluation; dashed lines mark"
                        " task boundaries.")
            )  # fmt: skip
            if _has_diagnostics(group, plots.PLASTICITY_KEYS):
                figures.append(
                    _figure(plots.plot_plasticity_by_method, group,
                            folder / f"plasticity_{name}.png",
                            f"Spectral plasticity over training ({kind}, {sequence})",
                            "r_e(K): effective rank of the policy's empirical NTK; r_e(A): the"
                            " SPHERE proxy (routing-weighted last-layer expert features). Lines:"
                            " seed means; bands: min–max over seeds; dashed: task boundaries.")
                )  # fmt: skip
            moe = [e for e in group if e.runs[0].run.routing_keys()]
            if moe:
                figures.append(
                    _figure(plots.plot_routing_heatmaps, moe, folder / f"routing_{name}.png",
                            f"Routing load per expert over training ({kind}, {sequence})",
                            "Mean routing weight of each expert on probe states of the current"
                            " task (seed mean), for the MoE methods.")
                )  # fmt: skip
    return figures


def _has_diagnostics(experiments: Sequence[ExperimentSummary], keys: Sequence[str]) -> bool:
    return any(m.run.diag_series(k)[0].size for e in experiments for m in e.runs for k in keys)


def _figure(draw: Callable, experiments, path: Path, title: str, caption: str) -> Figure:
    return Figure(draw(experiments, path), title, caption)


def _file_stem(text: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")
    return stem[:60] or "sequence"


def write_tables(report: Report) -> None:
    """``tables/<name>.csv`` for every table and ``report.md`` with all of them."""
    folder = report.out / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    for table in report.tables:
        (folder / f"{table.name}.csv").write_text(table.to_csv())
    (report.out / "report.md").write_text(render_markdown(report))


def render_markdown(report: Report) -> str:
    parts = [
        "# SPHERE experiment report\n",
        f"{report.n_runs} runs from `{report.runs_dir}` ({report.created}).\n",
    ]
    for table in report.tables:
        if table.name == "partial" and not table.rows:
            continue
        parts += [
            f"## {table.title}\n",
            table.caption + "\n" if table.caption else "",
            table.to_markdown(),
        ]
    if report.summary.notes:
        parts.append("## Notes\n")
        parts += [f"- {note}" for note in report.summary.notes]
        parts.append("")
    parts.append("## Figures\n")
    for figure in report.figures:
        rel = figure.path.relative_to(report.out)
        parts += [f"### {figure.title}\n", f"![{figure.title}]({rel})\n", figure.caption + "\n"]
    return "\n".join(parts)
