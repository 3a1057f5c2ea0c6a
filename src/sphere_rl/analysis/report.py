"""``sphere report``: run directories → tables (Markdown, CSV, LaTeX), figures (PNG, PDF, SVG)
and one self-contained HTML page.

Layout of the output directory::

    index.html                  everything, PNGs embedded (open it anywhere, mail it), with links
                                to every figure file
    report.md                   the same tables, with links to the figures
    raw.csv                     every per-run value the intervals are computed from (long format)
    tables/<name>.{csv,md,tex}  summary, aggregates, differences, per_task, runs, partial,
                                config_common, config_methods
    figures/<name>.{png,pdf,svg}
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from sphere_rl.analysis import plots
from sphere_rl.analysis.document import Figure, Report
from sphere_rl.analysis.entk_results import entk_matrix, read_entk_records
from sphere_rl.analysis.html import render_html
from sphere_rl.analysis.intervals import DEFAULT_METHOD, describe
from sphere_rl.analysis.provenance import summarize_provenance
from sphere_rl.analysis.raw import raw_csv
from sphere_rl.analysis.runs import RunLoadError, find_runs
from sphere_rl.analysis.summary import ExperimentSummary, summarize
from sphere_rl.analysis.tables import (
    DEFAULT_REFERENCE,
    LATEX_WIDTHS,
    Table,
    aggregates_table,
    config_tables,
    differences_table,
    partial_table,
    per_task_table,
    runs_table,
    summary_table,
)
from sphere_rl.continual.rundir import atomic_write_bytes


def check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    """Normalised figure formats, PNG first and always present (the HTML page embeds the PNGs);
    ValueError naming any unknown format."""
    formats = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for f in formats if f.strip()))
    unknown = [f for f in formats if f not in plots.FORMATS]
    if unknown:
        raise ValueError(
            f"unknown figure format(s) {', '.join(unknown)} in --formats; choose among"
            f" {', '.join(plots.FORMATS)}"
        )
    return ("png", *(f for f in formats if f != "png"))


def build_report(
    runs_dir: Path,
    out: Path,
    reps: int = 10_000,
    formats: Sequence[str] = plots.FORMATS,
    strict: bool = False,
    interval: str = DEFAULT_METHOD,
    reference: str = DEFAULT_REFERENCE,
    test: str = "welch",
    latex_width: str = "column",
) -> Report:
    """Read every run under ``runs_dir`` and write the report into ``out``.

    Args:
        formats: figure formats; PNG is always among them (the page embeds it).
        strict: refuse runs whose provenance differs, is unknown, or is not reproducible
            (:meth:`ProvenanceSummary.strict_problem`), before anything is written.
        interval: interval of a mean over seeds: t, bca or percentile.
        reference: the method every other is compared with (differences, P(improvement)).
        test: p-value of a difference: welch or permutation.
        latex_width: ``"column"`` or ``"text"``: the width the LaTeX tables fit
            (:func:`~sphere_rl.analysis.tables.paper_latex`).

    Raises:
        FileNotFoundError: when ``runs_dir`` holds no run directory.
        ValueError: for an unknown figure format, or (``strict``) runs that cannot be pooled.
    """
    runs_dir, out = Path(runs_dir), Path(out)
    formats = check_formats(formats)
    if latex_width not in LATEX_WIDTHS:
        raise ValueError(
            f"unknown --latex-width {latex_width!r}; choose among {', '.join(LATEX_WIDTHS)}"
        )
    unreadable: list[RunLoadError] = []
    runs = find_runs(runs_dir, unreadable)
    if not runs:
        bad = "".join(f"; unreadable: {err}" for err in unreadable)
        raise FileNotFoundError(f"no run directories (with a config.json) under {runs_dir}{bad}")
    provenance = summarize_provenance(runs)
    if strict and (problem := provenance.strict_problem()):
        raise ValueError(problem)
    summary = summarize(runs, reps=reps, interval=interval)
    all_metrics = [m for e in summary.experiments for m in e.runs] + summary.partial
    tables = [summary_table(summary), aggregates_table(summary, reference),
              differences_table(summary, reference, test), per_task_table(summary),
              runs_table(all_metrics)]  # fmt: skip
    tables.append(partial_table(summary))
    tables += config_tables(all_metrics)
    report = Report(runs_dir, out, summary, tables, created=time.strftime("%Y-%m-%d %H:%M:%S"),
                    unreadable=[str(err) for err in unreadable],
                    provenance=provenance, latex_width=latex_width)  # fmt: skip
    report.figures = make_figures(summary.experiments, out / "figures", formats, interval)
    write_tables(report)
    atomic_write_bytes(out / "raw.csv", raw_csv((m.run, m.label, m) for m in all_metrics).encode())
    atomic_write_bytes(out / "index.html", render_html(report).encode())
    return report


def make_figures(
    experiments: Sequence[ExperimentSummary],
    folder: Path,
    formats: Sequence[str] = plots.FORMATS,
    interval: str = DEFAULT_METHOD,
) -> list[Figure]:
    """Every figure the experiments support, per sequence (and protocol where it matters)."""
    figures = []

    def _figure(draw: Callable, data, path: Path, title: str, caption: str) -> Figure:
        png = draw(data, path, formats=formats)
        return Figure(png, title, caption, tuple(png.with_suffix(f".{f}") for f in formats))

    for sequence in sorted({e.sequence for e in experiments}):
        on_sequence = [e for e in experiments if e.sequence == sequence]
        stem = _file_stem(sequence)
        figures.append(
            _figure(plots.plot_rl_vs_crl, on_sequence,
                    folder / f"rl_vs_crl_{stem}.png", f"RL vs CRL average success on {sequence}",
                    f"Average success per method (bars: mean over seeds; whiskers: "
                    f"{describe(interval)} over seeds; n under each bar: its seeds)."
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
            panels = entk_panels(group)
            if panels:
                figures.append(
                    _figure(plots.plot_entk_matrices, panels, folder / f"entk_matrix_{name}.png",
                            f"r_e(K) transfer matrix ({kind}, {sequence})",
                            "r_e(K) of the checkpoint after task i (row) on task j's probe states"
                            " (column), mean over the seeds where `sphere entk` was run; blank:"
                            " not computed.")
                )  # fmt: skip
    return figures


def entk_panels(
    experiments: Sequence[ExperimentSummary],
) -> list[tuple[str, list[str], np.ndarray]]:
    """Per method with ``entk.json`` in at least one run: ``(title, tasks, seed-mean matrix)``."""
    panels = []
    for exp in experiments:
        n = len(exp.tasks)
        matrices = [entk_matrix(read_entk_records(m.run.path), n) for m in exp.runs]
        matrices = [m for m in matrices if np.isfinite(m).any()]
        if matrices:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # cells no seed computed
                mean = np.nanmean(np.stack(matrices), axis=0)
            seeds = f"{len(matrices)} seed{'s' if len(matrices) > 1 else ''}"
            panels.append((f"{exp.label}: {exp.protocol.upper()} ({seeds})", exp.tasks, mean))
    return panels


def _has_diagnostics(experiments: Sequence[ExperimentSummary], keys: Sequence[str]) -> bool:
    return any(m.run.diag_series(k)[0].size for e in experiments for m in e.runs for k in keys)


def _file_stem(text: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")
    return stem[:60] or "sequence"


def write_tables(report: Report) -> None:
    """``tables/<name>.{csv,md,tex}`` for every table and ``report.md`` with all of them."""
    (report.out / "tables").mkdir(parents=True, exist_ok=True)
    for table in report.tables:
        texts = (table.to_csv(), _markdown_section(table), table.to_latex(report.latex_width))
        for path, text in zip(report.table_files(table), texts, strict=True):
            atomic_write_bytes(path, text.encode())
    atomic_write_bytes(report.out / "report.md", render_markdown(report).encode())


def _markdown_section(table: Table) -> str:
    caption = table.full_caption
    return "\n".join(
        [f"## {table.title}\n", caption + "\n" if caption else "", table.to_markdown()]
    )


def render_markdown(report: Report) -> str:
    parts = [
        "# SPHERE experiment report\n",
        f"{report.n_runs} runs from `{report.runs_dir}` ({report.created}).\n",
    ]
    for table in report.tables:
        if table.name == "partial" and not table.rows:
            continue
        parts.append(_markdown_section(table))
    if report.summary.notes:
        parts.append("## Notes\n")
        parts += [f"- {note}" for note in report.summary.notes]
        parts.append("")
    parts.append("## Figures\n")
    for figure in report.figures:
        rel = figure.path.relative_to(report.out)
        links = " · ".join(
            f"[{p.suffix[1:].upper()}]({p.relative_to(report.out)})" for p in figure.files
        )
        parts += [f"### {figure.title}\n", f"![{figure.title}]({rel})\n",
                  f"{figure.caption} Files: {links}\n"]  # fmt: skip
    return "\n".join(parts)
