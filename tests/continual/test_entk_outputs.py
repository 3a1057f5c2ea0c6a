"""``sphere entk`` keeps its numbers in ``entk.json``; ``sphere report`` draws them as the
transfer matrix "r_e(K) of the checkpoint after task i on task j's probe states"."""

import numpy as np
from typer.testing import CliRunner

from sphere_rl.analysis.entk_results import entk_matrix, read_entk_records, save_entk_records
from sphere_rl.analysis.report import build_report, entk_panels
from sphere_rl.config import build_config
from sphere_rl.continual.runner import ContinualRunner


def _record(checkpoint, j, rank, samples=8, trace=False):
    return {"checkpoint": checkpoint, "probe_task_index": j, "probe_task": f"t{j}",
            "samples": samples, "trace_outputs": trace, "entk_rank": rank, "proxy_rank": 0.0}  # fmt: skip


def test_records_merge_and_fill_the_matrix(tmp_path):
    save_entk_records(tmp_path, [_record("task_000_end", 0, 5.0), _record("latest", 0, 9.0)])
    save_entk_records(tmp_path, [_record("task_001_end", 0, 3.0), _record("task_000_end", 0, 6.0)])
    records = read_entk_records(tmp_path)
    assert len(records) == 3  # the recomputed cell replaced, the others kept
    assert {r["checkpoint"]: r["train_task_index"] for r in records} == {
        "latest": None, "task_000_end": 0, "task_001_end": 1
    }  # fmt: skip
    # A bigger probe batch wins over a smaller one for the same cell, whatever the order.
    save_entk_records(tmp_path, [_record("task_001_end", 1, 40.0, samples=64),
                                 _record("task_001_end", 1, 4.0, samples=8)])  # fmt: skip
    matrix = entk_matrix(read_entk_records(tmp_path), 2)
    np.testing.assert_array_equal(matrix, [[6.0, np.nan], [3.0, 40.0]])
    assert read_entk_records(tmp_path / "missing") == []


def test_entk_command_saves_what_the_report_draws(tmp_path, tiny_overrides):
    from sphere_rl.cli.app import _register_all, app

    cfg = build_config({**tiny_overrides, "protocol": "crl"})
    run_dir = tmp_path / "runs" / "run"
    ContinualRunner.open(cfg, run_dir, show_progress=False).run()
    _register_all()
    result = CliRunner().invoke(app, ["entk", str(run_dir), "--samples", "8"], terminal_width=200)
    assert result.exit_code == 0, result.output
    records = read_entk_records(run_dir)
    cells = {(r["train_task_index"], r["probe_task_index"]): r["entk_rank"] for r in records}
    assert set(cells) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    for (i, _), rank in cells.items():  # the printed table shows the saved numbers
        assert f"task_{i:03d}_end" in result.output and f"{rank:.1f}" in result.output
    assert all(r["samples"] == 8 and r["trace_outputs"] is False for r in records)
    report = build_report(tmp_path / "runs", tmp_path / "report", reps=100, formats=["png"])
    assert any(f.path.name.startswith("entk_matrix_") for f in report.figures)
    ((_, _, matrix),) = entk_panels(report.summary.experiments)
    np.testing.assert_allclose(matrix, [[cells[0, 0], cells[0, 1]], [cells[1, 0], cells[1, 1]]])
