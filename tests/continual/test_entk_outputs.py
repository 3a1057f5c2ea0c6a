"""``sphere entk`` keeps its numbers in ``entk.json``; ``sphere report`` draws them as the
transfer matrix "r_e(K) of the checkpoint after task i on task j's probe states"."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sphere_rl.analysis.entk_results import (
    ENTK_FILE,
    entk_matrix,
    read_entk_records,
    save_entk_records,
)
from sphere_rl.analysis.report import build_report, entk_panels
from sphere_rl.config import build_config
from sphere_rl.continual.rundir import atomic_write_json, file_lock, remove_stale_temporaries
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


def _waiting_for_flock(pid: int, lock: Path) -> bool:
    """Whether process ``pid`` is blocked waiting for an flock on ``lock`` (Linux /proc/locks:
    a waiter's line has ``->`` and names the lock file's inode)."""
    inode = f":{lock.stat().st_ino} "
    return any(
        "->" in line and f" {pid} " in line and inode in line
        for line in Path("/proc/locks").read_text().splitlines()
    )


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux /proc/locks")
def test_a_second_writer_waits_for_the_lock_and_both_records_are_kept(tmp_path):
    # The test holds entk.json's lock as a first `sphere entk` would mid-merge; a second process
    # must wait for it (seen in /proc/locks, not guessed from timing), then merge, not overwrite.
    code = (
        "import sys; from sphere_rl.analysis.entk_results import save_entk_records;"
        f"save_entk_records(sys.argv[1], [{_record('task_001_end', 0, 7.0)!r}])"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with file_lock(tmp_path / ENTK_FILE):
        second = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], env=env)
        lock = tmp_path / f".{ENTK_FILE}.lock"
        deadline = time.monotonic() + 120
        while not _waiting_for_flock(second.pid, lock) and second.poll() is None:
            assert time.monotonic() < deadline, "the second writer never waited for the lock"
            time.sleep(0.05)
        assert second.poll() is None, "the second writer did not wait for the lock"
        first = {**_record("task_000_end", 0, 5.0), "train_task_index": 0}
        atomic_write_json(tmp_path / ENTK_FILE, {"records": [first]})  # the first writer's merge
    assert second.wait(timeout=120) == 0
    ranks = {r["checkpoint"]: r["entk_rank"] for r in read_entk_records(tmp_path)}
    assert ranks == {"task_000_end": 5.0, "task_001_end": 7.0}


def test_resume_cleanup_spares_the_temporary_of_a_live_entk_writer(tmp_path):
    # `sphere entk` does not hold the run's lock, so a resume's clean-up used to delete its
    # temporary mid-write (FileNotFoundError on the rename).
    live = tmp_path / f".{ENTK_FILE}.k2j4x9q1.tmp"
    stale = tmp_path / ".status.json.a8b7c6d5.tmp"
    for tmp in (live, stale):
        tmp.write_text("{")
    with file_lock(tmp_path / ENTK_FILE):
        assert remove_stale_temporaries(tmp_path) == [stale]
        assert live.exists()
    assert remove_stale_temporaries(tmp_path) == [live]  # a dead writer's temporary goes
