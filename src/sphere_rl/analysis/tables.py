"""Report tables, and their Markdown, CSV and HTML renderings.

A :class:`Table` holds raw values (numbers, :class:`Interval` s, text) so each format can render
them its own way: Markdown and HTML show ``mean [low, high]``, CSV splits an interval into numeric
columns (mean, low, high, and ``n``, the seeds behind it) for further analysis.
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sphere_rl.analysis.bootstrap import Interval
from sphere_rl.analysis.summary import SUMMARY_METRICS, RunMetrics, Summary


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
                header += [col.key, f"{col.key}_ci_low", f"{col.key}_ci_high", f"{col.key}_n"]
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
                    ]
                else:
                    cells.append(_csv_number(value) if isinstance(value, float) else value)
            writer.writerow(cells)
        return out.getvalue()

    def to_html(self) -> str:
        head = "".join(f"<th>{html.escape(c.title)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(format_cell(v))}</td>" for v in row) + "</tr>"
            for row in self.rows
        )
        caption = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        return (
            f'<table id="{self.name}">{caption}<thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>"
        )

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


def _csv_number(value: float) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.6g}"


# ------------------------------------------------------------------------------- the report tables
def summary_table(summary: Summary) -> Table:
    """Per sequence, method variant and protocol: the headline metrics with 95% CIs."""
    columns = [Column("sequence", "sequence"), Column("method", "method"),
               Column("protocol", "protocol"), Column("seeds", "seeds")]  # fmt: skip
    columns += [Column(key, title) for key, title in SUMMARY_METRICS.items()]
    table = Table(
        "summary",
        "Summary (finished runs; mean over seeds [95% bootstrap CI])",
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
    """Per experiment and task, seed means of the per-task quantities behind the summary."""
    table = Table(
        "per_task",
        "Per task (finished runs; mean over seeds)",
        [
            Column("sequence", "sequence"), Column("method", "method"),
            Column("protocol", "protocol"), Column("task_index", "#"), Column("task", "task"),
            Column("own_end_success", "success at end of own training"),
            Column("final_success", "success after last task"),
            Column("auc", "AUC (own training)"), Column("forward_transfer", "FT"),
        ],
    )  # fmt: skip
    per_task = ("own_end", "final", "auc", "forward_transfer_per_task")
    for exp in summary.experiments:
        for i, task in enumerate(exp.tasks):
            means = [_seed_mean(exp.runs, attr, i) for attr in per_task]
            table.rows.append([exp.sequence, exp.label, exp.protocol, i, task, *means])
    return table


def _seed_mean(runs: Sequence[RunMetrics], attr: str, task: int) -> float:
    values = [float(getattr(m, attr)[task]) for m in runs]
    defined = [v for v in values if not math.isnan(v)]
    return sum(defined) / len(defined) if defined else math.nan


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
