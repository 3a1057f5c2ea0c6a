"""The raw values behind a report, one CSV row per value, so every interval can be recomputed.

Columns: ``run, sequence, method, protocol, seed, task, step, metric, value``. Per run:

* every evaluation (``metric`` = ``<eval_kind>/success`` or ``<eval_kind>/return``, ``task`` the
  evaluated task, ``step`` the global env step, ``train_task`` in ``metric``'s prefix is implied by
  the step);
* every diagnostic point (``diag/<key>``, ``task`` the task being trained);
* with the report's per-run metrics: the per-seed numbers the intervals are computed from
  (``metric`` = a summary metric with ``task`` empty, or a per-task quantity with its task; no
  step).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from typing import Any

from sphere_rl.analysis.runs import RunData
from sphere_rl.analysis.summary import PER_TASK_METRICS, SUMMARY_METRICS, RunMetrics

HEADER = ("run", "sequence", "method", "protocol", "seed", "task", "step", "metric", "value")
_BOOKKEEPING = {"kind", "global_step", "task_index", "task", "iteration"}


def run_rows(run: RunData, method: str, metrics: RunMetrics | None = None) -> list[list[Any]]:
    """Every raw value of one run (see the module docstring), in log order."""
    head = [run.name, run.sequence, method, run.protocol, run.seed]
    rows = []
    if metrics is not None:
        for key in SUMMARY_METRICS:
            rows.append([*head, "", "", key, getattr(metrics, key)])
        for key in PER_TASK_METRICS:
            for task, value in zip(run.tasks, getattr(metrics, key), strict=True):
                rows.append([*head, task, "", key, value])
    for r in run.evals:
        task = run.tasks[r["eval_task_index"]]
        for field in ("success", "return"):
            if r.get(field) is not None:
                metric = f"{r['eval_kind']}/{field}"
                rows.append([*head, task, r["global_step"], metric, r[field]])
    for r in run.diags:
        task_index = r.get("task_index")
        task = run.tasks[task_index] if isinstance(task_index, int) else ""
        for key, value in r.items():
            if (
                key not in _BOOKKEEPING
                and isinstance(value, int | float)
                and not isinstance(value, bool)
            ):
                rows.append([*head, task, r["global_step"], f"diag/{key}", value])
    return rows


def raw_csv(entries: Iterable[tuple[RunData, str, RunMetrics | None]]) -> str:
    """The CSV of :func:`run_rows` for every ``(run, method label, metrics or None)``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for run, method, metrics in entries:
        for row in run_rows(run, method, metrics):
            value = float(row[-1])
            writer.writerow([*row[:-1], "" if math.isnan(value) else repr(value)])
    return out.getvalue()
