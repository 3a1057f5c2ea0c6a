"""``sphere mechanism`` needs the run-wide probe: without it, one line and exit 2 (not an empty
figure and exit 0); runs without it are left out; no section compares per-task probes."""

import json

from synthetic_runs import CRL_CURVES, CRL_MATRIX, write_run
from test_mechanism import _fixed_runs
from typer.testing import CliRunner

from sphere_rl.analysis.mechanism import FIXED, PROXY, RANK
from sphere_rl.cli.app import _register_all, app

_register_all()


def _invoke(*args):
    result = CliRunner().invoke(app, list(args), terminal_width=300)
    return result


def test_mechanism_refuses_runs_without_the_run_wide_probe(tmp_path):
    for seed in (0, 1):
        write_run(tmp_path / "runs", method="topk_moe", seed=seed, matrix=CRL_MATRIX,
                  curves=CRL_CURVES, ranks=[10, 9, 8, 7, 6, 5])  # fmt: skip
    out = tmp_path / "mech"
    result = _invoke("mechanism", str(tmp_path / "runs"), "--out", str(out))
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert "diag_fixed_probe false" in result.output and not out.exists()


def test_mechanism_leaves_out_runs_without_the_probe_and_per_task_sections(tmp_path):
    _fixed_runs(tmp_path / "runs", [[10, 9, 8, 7, 6, 5], [12, 10, 8, 9, 7, 4]])
    plain = write_run(tmp_path / "runs" / "plain", method="topk_moe", seed=5, matrix=CRL_MATRIX,
                      curves=CRL_CURVES, ranks=[10, 9, 8, 7, 6, 5])  # fmt: skip
    out = tmp_path / "mech"
    result = _invoke("mechanism", str(tmp_path / "runs"), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"runs without the run-wide probe left out: {plain.name}" in result.output
    payload = json.loads((out / "mechanism.json").read_text())
    assert set(payload) == {FIXED + RANK, FIXED + PROXY, "proxy_correlation"}
    assert [row["seeds"] for row in payload[FIXED + RANK]] == [2]
    assert "each task's own probe" not in (out / "mechanism.md").read_text()
