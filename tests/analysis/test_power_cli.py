"""``sphere power``: per method, the seeds needed to detect a difference, from the per-seed spread
of finished runs; its numbers are analysis.power's on an independently computed spread."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from typer.testing import CliRunner

from sphere_rl.analysis import continual_metrics as cm
from sphere_rl.analysis import power
from sphere_rl.analysis.runs import find_runs
from sphere_rl.cli.app import _register_all, app

_register_all()


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def _rows(output: str) -> dict[tuple[str, str], list[str]]:
    """The table's rows by (experiment, metric), cells stripped."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 6 and cells[2].isdigit():
            rows[(cells[0], cells[1])] = cells[2:]
    return rows


def test_power_prints_analysis_power_numbers_per_method(mixed_runs):
    result = _invoke("power", str(mixed_runs), "--metric", "average_success,forgetting",
                     "--difference", "0.05")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    # The oracle: each finished run's metrics straight from its task-end matrix.
    values: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for run in find_runs(mixed_runs):
        if run.finished:
            matrix = run.task_end_matrix()
            values[(run.method, run.protocol, "average_success")].append(cm.average_success(matrix))
            if run.protocol == "crl":
                values[(run.method, run.protocol, "forgetting")].append(cm.forgetting(matrix))
    assert len(values) == 6  # ppo, sphere × crl, rl (average success); × crl (forgetting)
    for (method, protocol, metric), seeds in values.items():
        (cells,) = [c for (exp, m), c in rows.items()
                    if m == metric and exp.endswith(f"/ {method} / {protocol}")]  # fmt: skip
        sd = float(np.std(seeds, ddof=1))
        assert cells == [
            "2",
            f"{sd:.4g}",
            str(power.seeds_needed(0.05, sd, 0.8, 0.05)),
            f"{power.detectable_difference(2, sd, 0.8, 0.05):.4g}",
        ]
    # RL runs have no forgetting: shown, with no numbers.
    assert all(c == ["0", "—", "—", "—"] for (e, m), c in rows.items()
               if m == "forgetting" and e.endswith("/ rl"))  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metric", "succes"], "unknown metric 'succes'; valid: average_success"),
        (["--difference", "0"], "--difference must be a finite number > 0, got 0.0"),
        (["--difference", "-0.1"], "--difference must be a finite number > 0, got -0.1"),
        (["--power", "1"], "--power must be in (0, 1), got 1.0"),
        (["--alpha", "0"], "--alpha must be in (0, 1), got 0.0"),
    ],
)
def test_power_bad_options_exit_2_with_one_line(mixed_runs, args, message):
    result = _invoke("power", str(mixed_runs), *args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output and message in " ".join(result.output.split())


def test_power_without_runs_exits_2(tmp_path):
    result = _invoke("power", str(tmp_path))
    assert result.exit_code == 2 and f"no runs under {tmp_path}" in " ".join(result.output.split())
    result = _invoke("power", str(tmp_path / "missing"))
    assert result.exit_code == 2 and "is not a directory" in result.output
