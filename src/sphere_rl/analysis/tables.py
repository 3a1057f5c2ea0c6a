"""Report tables, and their Markdown, CSV, LaTeX (booktabs) and HTML renderings.

A :class:`Table` holds raw values (numbers, :class:`Interval` s, text) so each format can render
them its own way: Markdown, LaTeX and HTML show ``mean [low, high]``, CSV splits an interval into
numeric columns (mean, low, high, ``n``, the seeds behind it, and ``is_ci``) for further analysis.
Wherever an interval rests on fewer than :data:`MIN_CI_SEEDS` seeds the caption says so.
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sphere_rl.analysis.aggregates import aggregates, improvement
from sphere_rl.analysis.bootstrap import MIN_CI_SEEDS, NOT_A_CI_MARK, Interval
from sphere_rl.analysis.differences import difference
from sphere_rl.analysis.intervals import describe
from sphere_rl.analysis.summary import (
    NOT_VARIANT_KEYS,
    PER_TASK_METRICS,
    SUMMARY_METRICS,
    ExperimentSummary,
    RunMetrics,
    Summary,
)
from sphere_rl.continual.rundir import read_json
from sphere_rl.methods import display_name


@dataclass(frozen=True)
class Column:
    key: str  # CSV header
    title: str  # Markdown / HTML header


@dataclass
class Table:
    name: str  # file stem and HTML anchor
    title: str
    columns: list[Column]
    rows: list[list[Any]] = field(default_factory=list)
    caption: str = ""
    latex_fold: int = 1  # paper-ready LaTeX: rows set side by side in this many blocks (long lists)

    @property
    def full_caption(self) -> str:
        """The caption, plus what a reader must know about intervals from too few seeds."""
        return " ".join([self.caption, *self.interval_notes()]).strip()

    def interval_notes(self) -> list[str]:
        """One line per caveat of the table's brackets: single seeds, ``†``."""
        cells = [v for row in self.rows for v in row if isinstance(v, Interval) and v.defined]
        notes = []
        if any(v.n == 1 for v in cells):
            notes.append("A value marked (n=1) comes from a single seed: no interval.")
        if any(1 < v.n and not v.is_ci for v in cells):
            notes.append(
                f"{NOT_A_CI_MARK}: fewer than {MIN_CI_SEEDS} seeds; the bracket is the range of a"
                " bootstrap over so few values, not a 95% confidence interval."
            )
        return notes

    def to_markdown(self) -> str:
        lines = [
            "| " + " | ".join(c.title for c in self.columns) + " |",
            "|" + "|".join("---" for _ in self.columns) + "|",
        ]
        lines += ["| " + " | ".join(format_cell(v) for v in row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        header: list[str] = []
        for col, sample in zip(self.columns, self._samples(), strict=True):
            if isinstance(sample, Interval):
                header += [col.key, f"{col.key}_ci_low", f"{col.key}_ci_high", f"{col.key}_n",
                           f"{col.key}_is_ci"]  # fmt: skip
            else:
                header.append(col.key)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for row in self.rows:
            cells: list[Any] = []
            for value in row:
                if isinstance(value, Interval):
                    cells += [
                        _csv_number(value.mean),
                        _csv_number(value.low),
                        _csv_number(value.high),
                        value.n,
                        value.is_ci,
                    ]
                else:
                    cells.append(_csv_number(value) if isinstance(value, float) else value)
            writer.writerow(cells)
        return out.getvalue()

    def to_html(self) -> str:
        head = "".join(f"<th>{html.escape(c.title)}</th>" for c in self.columns)
        body = "".join(
            "<tr>"
            + "".join(f"<td{_html_class(v)}>{html.escape(format_cell(v))}</td>" for v in row)
            + "</tr>"
            for row in self.rows
        )
        text = self.full_caption
        caption = f"<caption>{html.escape(text)}</caption>" if text else ""
        return (
            f'<table id="{self.name}">{caption}<thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>"
        )

    def to_latex(self, width: str | None = None) -> str:
        """A ``table`` float with a booktabs ``tabular`` (needs ``\\usepackage{booktabs}``).

        Args:
            width: ``None``: every column and cell as in the other formats. ``"column"`` or
                ``"text"``: paper-ready, fitting ``\\columnwidth`` (a ``table`` float) or
                ``\\textwidth`` (``table*``): see :func:`paper_latex`.
        """
        if width is not None:
            return paper_latex(self, width)
        align = "".join("r" if _numeric(s) else "l" for s in self._samples())
        lines = [
            "% Generated by sphere report; needs \\usepackage{booktabs}.",
            "\\begin{table}[t]",
            "\\centering",
            "\\small",
            f"\\caption{{{latex_escape(' '.join([self.title + '.', self.full_caption]).strip())}}}",
            f"\\label{{tab:{self.name.replace('_', '-')}}}",
            f"\\begin{{tabular}}{{{align}}}",
            "\\toprule",
            " & ".join(latex_escape(c.title) for c in self.columns) + " \\\\",
            "\\midrule",
        ]
        lines += [
            " & ".join(latex_escape(format_cell(v)) for v in row) + " \\\\" for row in self.rows
        ]
        lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
        return "\n".join(lines) + "\n"

    def _samples(self) -> list[Any]:
        """Per column, the first non-empty value (decides how CSV splits the column)."""
        samples: list[Any] = [None] * len(self.columns)
        for row in self.rows:
            for i, value in enumerate(row):
                if samples[i] is None and value is not None:
                    samples[i] = value
        return samples


def format_cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, Interval):
        return value.format()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.2f}"
    return str(value)


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "—": "--", "–": "--", NOT_A_CI_MARK: r"$^\dagger$", "×": r"$\times$", "≥": r"$\geq$",
    "≤": r"$\leq$", "→": r"$\rightarrow$", ">": r"$>$", "<": r"$<$",
}  # fmt: skip


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped (and the report's few non-ASCII symbols
    spelled in LaTeX), for use in a table cell or caption."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


_LONG_TEXT = 32  # characters: longer text (paths, error messages) may break anywhere in HTML


# ---------------------------------------------------------------------------- paper-ready LaTeX
# Float environment and width for `to_latex(width=...)` / `sphere report --latex-width`.
LATEX_WIDTHS = {"column": ("table", "\\columnwidth"), "text": ("table*", "\\textwidth")}
# What an interval is, when the interval does not say (an `Interval.method` attribute wins).
_DISPLAY_COLUMNS = frozenset({"method", "architecture", "plugins"})
# Text columns that only give context: with one value in every row they move to the caption.
_CONTEXT_COLUMNS = frozenset({"sequence", "protocol", "protocols", "seeds", "state", "partial",
                              "error"})  # fmt: skip
_HEADER_CHARS = 8  # longer column titles are set on two lines


def paper_latex(table: Table, width: str) -> str:
    """``table`` as a LaTeX float that fits ``\\columnwidth`` (``width="column"``, a ``table``) or
    ``\\textwidth`` (``"text"``, a ``table*``); needs ``\\usepackage{booktabs,graphicx,tabularx}``.

    It fits by: names as papers write them (:func:`~sphere_rl.methods.display_name`); context
    columns with one value in every row moved to the caption; intervals set below their mean in
    smaller type; long column titles on two lines; text longer than 32 characters wrapped in a
    ``tabularx`` ``X`` column; long lists set side by side (``Table.latex_fold`` blocks); and, if
    still too wide, scaled down to the width by ``\\resizebox`` (never up). The caption gives the
    number of seeds n and the interval method.
    """
    if width not in LATEX_WIDTHS:
        raise ValueError(f"LaTeX width must be one of {', '.join(LATEX_WIDTHS)}, got {width!r}")
    env, length = LATEX_WIDTHS[width]
    columns, rows, moved = _without_constant_context(table)
    samples = _first_values(rows, len(columns))
    wraps = [
        not _numeric(sample) and any(len(format_cell(r[i])) > _LONG_TEXT for r in rows)
        for i, sample in enumerate(samples)
    ]
    aligns = [
        "X" if w else "r" if _numeric(s) else "l" for w, s in zip(wraps, samples, strict=True)
    ]
    height = math.ceil(len(rows) / max(1, table.latex_fold)) or 1
    blocks = [rows[k : k + height] for k in range(0, len(rows), height)] or [[]]
    spec = "@{\\hspace{2em}}".join("".join(aligns) for _ in blocks)
    header = " & ".join(_paper_header(c.title, a) for c, a in zip(columns, aligns, strict=True))
    kind = "tabularx" if any(wraps) else "tabular"
    begin = (
        f"\\begin{{tabularx}}{{{length}}}{{{spec}}}"
        if any(wraps)
        else f"\\begin{{tabular}}{{{spec}}}"
    )
    lines = [
        "% Generated by sphere report; needs \\usepackage{booktabs,graphicx,tabularx}.",
        f"\\begin{{{env}}}[t]",
        "\\centering",
        "\\small",
        "\\setlength{\\tabcolsep}{4pt}",  # LaTeX's 6pt: a tenth of the width of a 10-column table
        f"\\caption{{{_paper_caption(table, moved, rows)}}}",
        f"\\label{{tab:{table.name.replace('_', '-')}}}",
        f"\\resizebox{{\\ifdim\\width>{length}{length}\\else\\width\\fi}}{{!}}{{%",
        begin,
        "\\toprule",
        " & ".join([header] * len(blocks)) + " \\\\",
        "\\midrule",
    ]
    for r in range(height if rows else 0):
        cells = []
        for block in blocks:
            row = block[r] if r < len(block) else [None] * len(columns)
            empty = r >= len(block)
            cells += ["" if empty else _paper_cell(c, v) for c, v in zip(columns, row, strict=True)]
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", f"\\end{{{kind}}}}}", f"\\end{{{env}}}"]
    return "\n".join(lines) + "\n"


def _without_constant_context(table: Table) -> tuple[list[Column], list[list[Any]], list[str]]:
    """Columns and rows without the context columns that hold one value in every row, and
    ``"title: value"`` for each of those (but empty ones)."""
    keep, moved = [], []
    for i, column in enumerate(table.columns):
        values = {format_cell(row[i]) for row in table.rows}
        if column.key in _CONTEXT_COLUMNS and len(values) == 1:
            value = values.pop()
            if value and value != "—":
                moved.append(f"{column.title}: {_display(column, value)}")
        else:
            keep.append(i)
    columns = [table.columns[i] for i in keep]
    return columns, [[row[i] for i in keep] for row in table.rows], moved


def _first_values(rows: Sequence[Sequence[Any]], n: int) -> list[Any]:
    """Per column, the first value that is not None."""
    return [next((row[i] for row in rows if row[i] is not None), None) for i in range(n)]


def _display(column: Column, text: str) -> str:
    if column.key in _DISPLAY_COLUMNS:
        return display_name(text)
    return text.upper() if column.key.startswith("protocol") else text


def _paper_cell(column: Column, value: Any) -> str:
    """One cell; an interval as its mean over its bracket in smaller type."""
    if isinstance(value, Interval) and value.defined and value.n >= 2:
        point, _, bracket = value.format().partition(" ")
        return (
            f"\\begin{{tabular}}[t]{{@{{}}r@{{}}}}{latex_escape(point)}\\\\"
            f"{{\\scriptsize {latex_escape(bracket)}}}\\end{{tabular}}"
        )
    return _math_names(latex_escape(_display(column, format_cell(value))))


def _paper_header(title: str, align: str) -> str:
    """A column title, on two lines (split at the space nearest its middle) if long."""
    text = _math_names(latex_escape(title))
    if align == "X" or len(title) <= _HEADER_CHARS or " " not in title:
        return text
    spaces = [i for i, ch in enumerate(title) if ch == " "]
    cut = min(spaces, key=lambda i: abs(i - len(title) / 2))
    first, second = (_math_names(latex_escape(part)) for part in (title[:cut], title[cut + 1 :]))
    # `{}` after the line break: a second line starting with `[` is not \\'s optional argument
    return f"\\begin{{tabular}}[b]{{@{{}}{align}@{{}}}}{first}\\\\{{}}{second}\\end{{tabular}}"


def _paper_caption(table: Table, moved: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Title (without its parenthesised note), the table's caption, the context moved out of the
    columns, and what a cell is: n seeds and the interval method."""
    parts = [table.title.split(" (")[0] + ".", table.full_caption]
    parts += [f"{m}." for m in moved]
    intervals = [v for row in rows for v in row if isinstance(v, Interval) and v.defined]
    if intervals:
        ns = sorted({v.n for v in intervals})
        n = f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}–{ns[-1]}"
        methods = sorted({describe(v.method) for v in intervals if v.n >= 2})
        below = f", with its {' / '.join(methods)} below it" if methods else ""
        parts.append(f"Each cell: the mean over seeds ({n} per cell){below}.")
    return _math_names(latex_escape(" ".join(p for p in parts if p)))


def _math_names(escaped: str) -> str:
    """The effective ranks in math mode: ``r\\_e(K)`` → ``$r_e(K)$``."""
    return escaped.replace("r\\_e(K)", "$r_e(K)$").replace("r\\_e(A)", "$r_e(A)$")


def _html_class(value: Any) -> str:
    """Numbers and intervals stay on one line; long text may break anywhere (so a table always
    fits its container); other text wraps at spaces only (so short words never break)."""
    if _numeric(value):
        return ' class="num"'
    return ' class="long"' if len(format_cell(value)) > _LONG_TEXT else ""


def _numeric(sample: Any) -> bool:
    return isinstance(sample, Interval | float | int) and not isinstance(sample, bool)


def _csv_number(value: float) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.6g}"


# ------------------------------------------------------------------------------- the report tables
def summary_table(summary: Summary) -> Table:
    """Per sequence, method variant and protocol: the headline metrics with 95% CIs."""
    what = describe(summary.interval)
    columns = [Column("sequence", "sequence"), Column("method", "method"),
               Column("protocol", "protocol"), Column("seeds", "seeds")]  # fmt: skip
    columns += [Column(key, title) for key, title in SUMMARY_METRICS.items()]
    table = Table(
        "summary",
        f"Summary (finished runs; mean over seeds [{what}])",
        columns,
        caption="Average success: each task's success at the end of its own training, averaged"
        " over tasks (the SPHERE paper's metric). Average performance, forgetting and forward"
        " transfer: Continual World's definitions (CRL only). r_e(K): effective rank of the"
        " policy's empirical NTK on probe states.",
    )
    for exp in summary.experiments:
        row = [exp.sequence, exp.label, exp.protocol, len(exp.runs)]
        row += [exp.intervals[key] for key in SUMMARY_METRICS]
        table.rows.append(row)
    return table


def per_task_table(summary: Summary) -> Table:
    """Per experiment and task: the per-task quantities behind the summary, mean over seeds with
    95% CIs."""
    what = describe(summary.interval)
    columns = [Column("sequence", "sequence"), Column("method", "method"),
               Column("protocol", "protocol"), Column("seeds", "seeds"),
               Column("task_index", "#"), Column("task", "task")]  # fmt: skip
    names = {"own_end": "own_end_success", "final": "final_success",
             "forward_transfer_per_task": "forward_transfer"}  # fmt: skip
    columns += [Column(names.get(key, key), title) for key, title in PER_TASK_METRICS.items()]
    table = Table(
        "per_task",
        f"Per task (finished runs; mean over seeds [{what}])",
        columns,
        caption="Success at the end of the task's own training, success after the last task"
        " (CRL), normalised area under the success curve during the task's own training, and"
        " Continual World's forward transfer FT_i (CRL against its RL reference).",
    )
    for exp in summary.experiments:
        for i, task in enumerate(exp.tasks):
            cells = [exp.task_intervals[key][i] for key in PER_TASK_METRICS]
            table.rows.append([exp.sequence, exp.label, exp.protocol, len(exp.runs), i, task,
                               *cells])  # fmt: skip
    return table


def runs_table(metrics: Sequence[RunMetrics]) -> Table:
    """Every run with its state; ``partial`` flags the runs kept out of the summary."""
    table = Table(
        "runs",
        "Runs",
        [
            Column("run", "run"), Column("sequence", "sequence"), Column("method", "method"),
            Column("protocol", "protocol"), Column("seed", "seed"), Column("state", "state"),
            Column("partial", "partial"), Column("tasks_done", "tasks done"),
            Column("global_step", "env steps"), Column("average_success", "avg success"),
            Column("error", "error"),
        ],
    )  # fmt: skip
    for m in sorted(metrics, key=lambda m: m.run.name):
        run = m.run
        table.rows.append([
            run.name, run.sequence, m.label, run.protocol, run.seed, run.state,
            not run.finished, f"{run.tasks_done}/{len(run.tasks)}",
            int(run.status.get("global_step", 0)), m.average_success,
            run.status.get("error") or "",
        ])  # fmt: skip
    return table


def partial_table(summary: Summary) -> Table:
    """Partial runs: what they have so far, never pooled with the finished runs."""
    table = runs_table(summary.partial)
    table.name, table.title = "partial", "Partial runs (not in the summary)"
    table.caption = (
        "Runs that are still running, were interrupted or failed. Average success covers only"
        " the tasks they finished."
    )
    return table


# ------------------------------------------------------------------------------- configurations
_PER_RUN_KEYS = ("seed", "protocol")  # shown as their own columns, not as hyperparameters


def config_tables(metrics: Sequence[RunMetrics]) -> tuple[Table, Table]:
    """The run configurations: the settings shared by every run (key, value), and per method
    variant the settings where it departs from them. Together they give every method's full
    configuration."""
    configs = [m.run.config for m in metrics]
    keys = sorted(set().union(*configs)) if configs else []
    common = {
        k: configs[0].get(k)
        for k in keys
        if k not in _PER_RUN_KEYS and len({_config_value(c.get(k)) for c in configs}) == 1
    }
    shared = Table(
        "config_common",
        "Configuration shared by all runs",
        [Column("key", "key"), Column("value", "value")],
        [[k, _config_value(v)] for k, v in common.items()],
        caption="Resolved configuration (config.json of each run) common to every run of the"
        " report; the next table lists what each method sets differently.",
        latex_fold=2,  # a long list of short pairs: two side by side in LaTeX
    )
    columns = [Column("sequence", "sequence"), Column("method", "method"),
               Column("protocols", "protocols"), Column("seeds", "seeds"),
               Column("architecture", "architecture"), Column("plugins", "plug-ins"),
               Column("settings", "settings that differ from the shared configuration")]  # fmt: skip
    per_method = Table("config_methods", "Hyperparameters per method", columns)
    groups: dict[tuple[str, str], list[RunMetrics]] = {}
    for m in sorted(metrics, key=lambda m: (m.run.sequence, m.label)):
        groups.setdefault((m.run.sequence, m.label), []).append(m)
    for (sequence, label), members in groups.items():
        settings = []
        for k in keys:
            if k in common or k in _PER_RUN_KEYS or k in NOT_VARIANT_KEYS:
                continue
            values = dict.fromkeys(_config_value(m.run.config.get(k)) for m in members)
            settings.append(f"{k}={' | '.join(values)}")
        protocols = ", ".join(sorted({m.run.protocol for m in members}))
        seeds = ", ".join(str(s) for s in sorted({m.run.seed for m in members}))
        arch, plugins = _method_parts(members[0].run.path)
        per_method.rows.append(
            [sequence, label, protocols, seeds, arch, plugins, "; ".join(settings) or "—"]
        )
    return shared, per_method


def _method_parts(run_dir) -> tuple[str, str]:
    """Architecture and plug-ins the runner resolved for a run (its ``run.json``)."""
    try:
        info = read_json(run_dir / "run.json")
    except (OSError, ValueError):
        return "—", "—"
    return str(info.get("arch") or "—"), "+".join(info.get("regularizers") or []) or "none"


def _config_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value)


# ------------------------------------------------------------------------------- comparisons
DEFAULT_REFERENCE = "topk_moe"  # the SPHERE paper's baseline


def _by_key(summary: Summary) -> dict[tuple[str, str], dict[str, ExperimentSummary]]:
    """(sequence, protocol) → method label → experiment."""
    groups: dict[tuple[str, str], dict[str, ExperimentSummary]] = {}
    for exp in summary.experiments:
        groups.setdefault((exp.sequence, exp.protocol), {})[exp.label] = exp
    return groups


def format_p(p: float) -> str:
    """A p-value for a table: three significant digits, ``<0.001`` below that, ``—`` if NaN."""
    if math.isnan(p):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3g}"


def differences_table(
    summary: Summary, reference: str = DEFAULT_REFERENCE, test: str = "welch"
) -> Table:
    """Every method against ``reference`` (same sequence and protocol), per summary metric:
    difference of means over seeds, its 95% Welch interval, the p of ``test``, and both n."""
    columns = [Column("sequence", "sequence"), Column("protocol", "protocol"),
               Column("method", "method"), Column("metric", "metric"),
               Column("n", "n"), Column("n_reference", "n ref"),
               Column("difference", "difference [95% Welch CI]"),
               Column("p", f"p ({test})")]  # fmt: skip
    table = Table(
        "differences",
        f"Differences against {reference} (method − reference)",
        columns,
        caption=f"Mean over seeds of each method minus that of {reference} on the same sequence"
        " and protocol, with Welch's 95% t interval (unequal variances) and the two-sided p of "
        + ("Welch's t-test." if test == "welch" else "a permutation test (exact enumeration of"
           " the seed relabellings when there are at most 20,000).")
        + " n, n ref: seeds of the method and of the reference. No correction for multiple"
        " comparisons.",
    )  # fmt: skip
    for (sequence, protocol), labels in sorted(_by_key(summary).items()):
        ref = labels.get(reference)
        if ref is None:
            continue
        for label, exp in sorted(labels.items()):
            if label == reference:
                continue
            for key, title in SUMMARY_METRICS.items():
                d = difference(_seed_values(exp, key), _seed_values(ref, key), test)
                if math.isnan(d.diff):
                    continue
                cell = Interval(d.diff, d.low, d.high, min(d.n_a, d.n_b), "welch")
                table.rows.append([sequence, protocol, label, title, d.n_a, d.n_b, cell,
                                   format_p(d.p)])  # fmt: skip
    return table


def _seed_values(exp: ExperimentSummary, key: str) -> list[float]:
    return [getattr(m, key) for m in exp.runs]


def aggregates_table(summary: Summary, reference: str = DEFAULT_REFERENCE) -> Table:
    """rliable's aggregates of the per-task success at the end of each task's own training
    (seeds × tasks): mean, IQM, optimality gap, and P(method > reference), each with a 95%
    stratified bootstrap CI."""
    columns = [Column("sequence", "sequence"), Column("method", "method"),
               Column("protocol", "protocol"), Column("seeds", "seeds"), Column("tasks", "tasks"),
               Column("mean", "mean"), Column("iqm", "IQM"),
               Column("optimality_gap", "optimality gap"),
               Column("p_improvement", f"P(> {reference})")]  # fmt: skip
    table = Table(
        "aggregates",
        "Aggregates over tasks × seeds (success at end of own training; 95% stratified bootstrap"
        " CI)",
        columns,
        caption="rliable's estimators (Agarwal et al., 2021): IQM is the mean of the middle 50% of"
        " all seed × task scores; optimality gap the mean shortfall below success 1; P(> ref) the"
        f" probability that the method beats {reference} on a random task and seed pair. Intervals"
        " resample seeds within each task.",
    )
    groups = _by_key(summary)
    for exp in summary.experiments:
        scores = np.array([m.own_end for m in exp.runs], dtype=float)
        scores = scores[np.isfinite(scores).all(axis=1)]
        if not scores.size:
            continue
        agg = aggregates(scores)
        ref = groups[(exp.sequence, exp.protocol)].get(reference)
        poi = None
        if ref is not None and exp is not ref:
            ref_scores = np.array([m.own_end for m in ref.runs], dtype=float)
            ref_scores = ref_scores[np.isfinite(ref_scores).all(axis=1)]
            if ref_scores.size and ref_scores.shape[1] == scores.shape[1]:
                poi = improvement(scores, ref_scores)
        table.rows.append([exp.sequence, exp.label, exp.protocol, len(scores), scores.shape[1],
                           agg.mean, agg.iqm, agg.optimality_gap, poi])  # fmt: skip
    return table
