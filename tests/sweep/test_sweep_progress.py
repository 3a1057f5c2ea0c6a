"""Sweep progress (read from run directories), narrow summaries, and ``--plugin`` in sweeps."""

import io
import json
import os
import subprocess
import sys
import time

import pytest
from rich.console import Console
from sweep_setup import ONE_TASK, sweep_cmd
from typer.testing import CliRunner

from sphere_rl.cli import sweep as sweep_cli
from sphere_rl.cli.app import _register_all, app
from sphere_rl.config import build_config
from sphere_rl.sweep.plan import plan_run
from sphere_rl.sweep.progress import GridProgress, last_train_record
from sphere_rl.sweep.ray_runner import RunOutcome

_register_all()


def _plans(tmp_path, n):
    return [plan_run(build_config({**ONE_TASK, "seed": s}), tmp_path) for s in range(n)]


def _append(run_dir, *records):
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "metrics.jsonl", "a") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")


def test_grid_progress_counts_runs_from_their_metrics(tmp_path):
    plans = _plans(tmp_path, 4)
    old = plans[3].run_dir
    _append(old, {"kind": "train", "global_step": 10, "sps": 999.0})
    past = time.time() - 3600
    os.utime(old / "metrics.jsonl", (past, past))  # written before this sweep: not running
    grid = GridProgress(plans, started=time.time() - 1)
    assert grid.line().startswith("grid 0/4 done | 0 running | 4 queued | 0 steps/s")

    _append(plans[0].run_dir, {"kind": "train", "global_step": 100, "sps": 250.0},
            {"kind": "eval", "global_step": 100})  # fmt: skip
    _append(plans[1].run_dir, {"kind": "train", "global_step": 50, "sps": 125.5})
    with open(plans[1].run_dir / "metrics.jsonl", "a") as handle:
        handle.write('{"kind": "train", "glo')  # a record being written
    record, _ = last_train_record(plans[1].run_dir)
    assert record == {"kind": "train", "global_step": 50, "sps": 125.5}
    assert grid.line().startswith("grid 0/4 done | 2 running | 2 queued | 376 steps/s")

    grid.mark_done(plans[0].name, ok=True)
    grid.mark_done(plans[2].name, ok=False)
    assert grid.line().startswith("grid 2/4 done (1 failed) | 1 running | 1 queued | 126 steps/s")


def test_log_display_ends_with_the_grid_totals(tmp_path, monkeypatch):
    """In a log (not a terminal) the grid line is printed at most every interval, and once more
    at the end, so a sweep whose runs all finish between two ticks still reports its totals."""
    stream = io.StringIO()
    monkeypatch.setattr(sweep_cli, "console", Console(file=stream, width=200))
    monkeypatch.setenv("SPHERE_PROGRESS_INTERVAL", "3600")
    plans = _plans(tmp_path, 2)
    grid = GridProgress(plans, started=time.time())
    with sweep_cli._GridDisplay(grid) as display:
        display.tick()
        for plan in plans:
            grid.mark_done(plan.name, ok=True)
            display.refresh()
    lines = [line for line in stream.getvalue().splitlines() if line.startswith("grid ")]
    assert len(lines) == 1 and lines[0].startswith("grid 2/2 done | 0 running | 0 queued"), lines


def test_summary_keeps_run_names_on_one_line(tmp_path, monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sweep_cli, "console", Console(file=stream, width=64))
    names = ["custom-reach-v3-window-close-v3-crl-topk_moe_ln-s12", "cw10-rl-ppo10x-s3"]
    outcomes = [RunOutcome(n, str(tmp_path / n), "m", "crl", 0, "new", "finished", 1_234_567, 61.0)
                for n in names]  # fmt: skip
    sweep_cli._print_summary(outcomes)
    lines = stream.getvalue().splitlines()
    for name in names:
        assert sum(name in line for line in lines) == 1, stream.getvalue()
    assert "results: 2 finished" in stream.getvalue()


def test_sweep_validates_methods_and_loads_plugins(tmp_path, config_file, isolated_registries):
    cfg = str(config_file(ONE_TASK))
    bad = CliRunner().invoke(app, ["sweep", "--methods", "ppo,nope", "--config", cfg, "--out",
                                   str(tmp_path / "runs"), "--dry-run"])  # fmt: skip
    assert bad.exit_code == 2 and "unknown method" in bad.output
    plugin = tmp_path / "ux_sweep_plugin.py"
    plugin.write_text("import sphere_rl\nsphere_rl.register_method('swept', 'mlp', 'l2_init')\n")
    good = CliRunner().invoke(app, ["sweep", "--methods", "swept", "--config", cfg, "--plugin",
                                    str(plugin), "--out", str(tmp_path / "runs"), "--dry-run"],
                              terminal_width=200)  # fmt: skip
    assert good.exit_code == 0, good.output
    assert "custom-reach-v3-quick-crl-swept-s0-" in good.output
    sys.modules.pop("ux_sweep_plugin", None)


@pytest.mark.slow
def test_ray_workers_import_the_plugin(tmp_path, config_file):
    """A method that exists only in a plug-in file trains in Ray workers, with grid progress lines
    and no Ray log noise on the driver's terminal."""
    plugin = tmp_path / "ux_ray_plugin.py"
    plugin.write_text("import sphere_rl\nsphere_rl.register_method('rayed', 'mlp', 'snp')\n")
    out = tmp_path / "runs"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200",
           "SPHERE_PROGRESS_INTERVAL": "0"}  # fmt: skip
    result = subprocess.run(
        sweep_cmd(config_file(ONE_TASK), out, "--methods", "rayed", "--seeds", "0-1",
                  "--protocols", "crl", "--plugin", str(plugin)),
        env=env, capture_output=True, text=True, timeout=600, cwd="/",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "sweep_summary.json").read_text())
    assert [o["result"] for o in summary] == ["finished", "finished"]
    assert "grid " in result.stdout and " done" in result.stdout
    for noise in ("INFO", "WARNING", "(raylet)", "(pid="):
        assert noise not in result.stdout + result.stderr, result.stdout + result.stderr
