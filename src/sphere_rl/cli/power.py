"""``sphere power``: how many seeds a comparison needs, from the per-seed spread of existing runs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from sphere_rl.cli.common import fail
from sphere_rl.cli.output import make_console, name_table

console = make_console()


def register(app: typer.Typer) -> None:
    app.command("power")(power_command)


@dataclass(frozen=True)
class PowerRow:
    """One method variant's numbers for one metric (NaN / None where they cannot be computed)."""

    experiment: str  # sequence / label / protocol
    metric: str
    n: int  # finished seeds with a value
    sd: float  # per-seed standard deviation (ddof = 1)
    seeds_needed: int | None  # per arm, to detect the difference at the power
    detectable: float  # difference detectable at the power with the current n


def power_rows(
    runs_dir: Path, metrics: list[str], difference: float, target: float, alpha: float
) -> list[PowerRow]:
    """Per experiment (as ``sphere report`` groups finished runs) and metric: n, per-seed sd,
    seeds per arm to detect ``difference`` and the difference detectable at the current n.

    Raises:
        ValueError: no finished runs under ``runs_dir``.
    """
    from sphere_rl.analysis import power
    from sphere_rl.analysis.runs import find_runs
    from sphere_rl.analysis.summary import summarize

    runs = find_runs(runs_dir, unreadable=[])
    if not runs:
        raise ValueError(f"no runs under {runs_dir}")
    # The t interval needs no resamples: reps=1 keeps summarize() cheap.
    experiments = summarize(runs, reps=1, interval="t").experiments
    if not experiments:
        raise ValueError(f"no finished runs under {runs_dir} (the per-seed spread needs them)")
    rows = []
    for exp in experiments:
        for metric in metrics:
            values = np.array([getattr(m, metric) for m in exp.runs], dtype=float)
            values = values[np.isfinite(values)]
            n = len(values)
            sd = float(np.std(values, ddof=1)) if n >= 2 else math.nan
            needed, detectable = None, math.nan
            if n >= 2 and sd > 0:  # zero spread: any difference is "detected", nothing to size
                detectable = power.detectable_difference(n, sd, target, alpha)
                try:
                    needed = power.seeds_needed(difference, sd, target, alpha)
                except ValueError:  # more seeds than the search limit: shown as unknown
                    needed = None
            name = f"{exp.sequence} / {exp.label} / {exp.protocol}"
            rows.append(PowerRow(name, metric, n, sd, needed, detectable))
    return rows


def power_command(
    runs_dir: Annotated[Path, typer.Argument(help="Directory searched (recursively) for runs.")],
    metric: Annotated[
        str,
        typer.Option(
            help="Comma-separated summary metrics among average_success, average_performance,"
            " forgetting, forward_transfer, rank_final, rank_min."
        ),
    ] = "average_success",
    difference: Annotated[
        float, typer.Option(help="The true difference between two methods to detect.")
    ] = 0.1,
    target: Annotated[
        float, typer.Option("--power", help="Probability of detecting it (power).")
    ] = 0.8,
    alpha: Annotated[float, typer.Option(help="Level of the two-sided t-test.")] = 0.05,
) -> None:
    """Seeds needed per method to detect a difference, from the per-seed spread of finished runs:
    per method variant and metric, the seeds n and their sd, the seeds per method that detect
    --difference with --power in a two-sided t-test at --alpha, and the difference the current n
    detects."""
    from sphere_rl.analysis.summary import SUMMARY_METRICS

    metrics = [m.strip() for m in metric.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in SUMMARY_METRICS]
    if unknown or not metrics:
        fail(
            f"unknown metric {unknown[0] if unknown else metric!r}; valid: {', '.join(SUMMARY_METRICS)}"
        )
    if not difference > 0 or not math.isfinite(difference):
        fail(f"--difference must be a finite number > 0, got {difference}")
    if not 0 < target < 1:
        fail(f"--power must be in (0, 1), got {target}")
    if not 0 < alpha < 1:
        fail(f"--alpha must be in (0, 1), got {alpha}")
    if not runs_dir.is_dir():
        fail(f"{runs_dir} is not a directory")
    try:
        rows = power_rows(runs_dir, metrics, difference, target, alpha)
    except ValueError as err:
        fail(str(err))
    table = name_table(
        f"seeds to detect a difference of {difference:g} with power {target:g} (alpha {alpha:g})",
        ["experiment", "metric"],
        ["n", "sd", "seeds needed per method", f"detectable at n (power {target:g})"],
    )
    for row in rows:
        table.add_row(
            row.experiment,
            row.metric,
            str(row.n),
            "—" if math.isnan(row.sd) else f"{row.sd:.4g}",
            "—" if row.seeds_needed is None else str(row.seeds_needed),
            "—" if math.isnan(row.detectable) else f"{row.detectable:.4g}",
        )
    console.print(table)
    console.print(
        "— : fewer than 2 finished seeds with a value, or no spread between them.", highlight=False
    )
