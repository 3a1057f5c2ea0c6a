"""A run directory survives what used to lose or corrupt it: non-finite weights reaching a
checkpoint, a second process, stale temporaries and locks, bugs inside training."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_helpers import TINY_RUN
from typer.testing import CliRunner

import sphere_rl.continual.runner as runner_module
from sphere_rl.algo.ppo import NonFiniteLossError, PPOAgent
from sphere_rl.cli.app import _register_all, app
from sphere_rl.config import build_config
from sphere_rl.continual.finite import NonFiniteStateError, first_non_finite
from sphere_rl.continual.rundir import (
    LOCK_NAME,
    JsonlLog,
    RunBusyError,
    atomic_write_json,
    read_jsonl,
    run_lock,
)
from sphere_rl.continual.runner import ContinualRunner

_register_all()


def _latest(run: Path) -> dict:
    return torch.load(run / "checkpoints/latest.pt", weights_only=False)


def _all_finite(state: dict) -> bool:
    return first_non_finite({k: state[k] for k in ("actor", "critic", "actor_optimizer")}) is None


def test_first_non_finite_names_the_first_bad_tensor():
    good, bad = torch.zeros(3), torch.tensor([0.0, float("inf")])
    tree = {"actor": {"w": good, "b": torch.arange(3)}, "opt": {"state": {0: {"m": bad}}}}
    assert first_non_finite(tree) == "opt.state.0.m"
    assert first_non_finite({"a": [good, good.numpy()]}) is None
    assert first_non_finite({"a": [good, bad.numpy()]}) == "a.1"


def test_weights_poisoned_after_a_finite_loss_never_reach_a_checkpoint(tmp_path, monkeypatch):
    """The original failure: losses pass their check, the weights are NaN, the next checkpoint
    used to overwrite the good one."""
    runner = ContinualRunner.open(build_config(TINY_RUN), tmp_path / "run", show_progress=False)
    original = PPOAgent.update

    def update_then_poison(agent, *args):
        stats = original(agent, *args)  # finite losses
        with torch.no_grad():
            next(agent.actor.parameters()).fill_(float("nan"))
        return stats

    monkeypatch.setattr(PPOAgent, "update", update_then_poison)
    with pytest.raises(
        NonFiniteStateError,
        match=r"non-finite values in actor\.\S+ at step 100; checkpoints/latest.pt was not written",
    ):
        runner.run()
    status = json.loads((tmp_path / "run/status.json").read_text())
    assert status["state"] == "failed" and "non-finite values in actor." in status["error"]
    payload = _latest(tmp_path / "run")
    assert payload["state"]["global_step"] == 0 and _all_finite(payload["agent"])


def test_infinite_rho_that_slips_past_validation_cannot_corrupt_the_checkpoint(tmp_path):
    cfg = dataclasses.replace(build_config({**TINY_RUN, "steps_per_task": 300}), rho=float("inf"))
    runner = ContinualRunner.open(cfg, tmp_path / "run", show_progress=False)
    with pytest.raises(NonFiniteLossError):
        runner.run()
    assert json.loads((tmp_path / "run/status.json").read_text())["state"] == "failed"
    assert _all_finite(_latest(tmp_path / "run")["agent"])


def test_stale_lock_of_a_dead_process_is_recovered(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).write_text("999999999\n")  # a PID that cannot exist: its holder died
    with run_lock(run):
        assert (run / LOCK_NAME).read_text() == f"{os.getpid()}\n"
        with pytest.raises(RunBusyError, match=f"PID {os.getpid()}"), run_lock(run):
            pass
    with run_lock(run):  # released on exit
        pass


def test_resume_removes_temporaries_of_interrupted_writes(interrupted_run):
    stale = [
        interrupted_run / ".status.json.x1y2.tmp",
        interrupted_run / "checkpoints/.latest.pt.z.tmp",
    ]
    for path in stale:
        path.write_bytes(b"half a file")
    (interrupted_run / "notes.tmp").write_text("the user's")  # not ours: kept
    ContinualRunner.open(None, interrupted_run, show_progress=False)
    assert not any(p.exists() for p in stale)
    assert (interrupted_run / "notes.tmp").exists()


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664)])
def test_atomic_writes_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_json(tmp_path / "status.json", {"state": "running"})
    finally:
        os.umask(old)
    assert (tmp_path / "status.json").stat().st_mode & 0o777 == mode


def test_trimming_logs_leaves_an_intact_file_alone(tmp_path):
    log = JsonlLog(tmp_path / "metrics.jsonl")
    for step in (100, 200):
        log.append({"kind": "train", "global_step": step})
    inode = log.path.stat().st_ino
    assert len(log.truncate_after(200)) == 2 and log.path.stat().st_ino == inode
    assert [r["global_step"] for r in log.truncate_after(100)] == [100]


def test_a_bug_inside_training_keeps_its_traceback_and_logs_it(tmp_path, monkeypatch):
    def broken(*args):
        raise RuntimeError("a bug, not the user's mistake")

    monkeypatch.setattr(runner_module, "train_iteration", broken)
    config = tmp_path / "c.json"
    config.write_text(json.dumps(TINY_RUN))
    result = CliRunner().invoke(
        app, ["train", "--config", str(config), "--out", str(tmp_path / "runs"), "--quiet"]
    )
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError)
    (run,) = (tmp_path / "runs").iterdir()
    log = (run / "error.log").read_text()
    assert "Traceback (most recent call last)" in log and "a bug, not the user's mistake" in log
    assert json.loads((run / "status.json").read_text())["state"] == "failed"


@pytest.mark.slow
def test_two_processes_on_one_run_never_interleave_records(tmp_path):
    """The original failure: `--resume` while the first process still trains used to run both to
    the end, appending duplicated records to metrics.jsonl. The first process holds the run after
    its first checkpoint until the second has tried (a plug-in), so that it cannot finish first on
    a fast machine."""
    config = tmp_path / "c.json"
    config.write_text(json.dumps({**TINY_RUN, "steps_per_task": 1000, "eval_interval": 10_000}))
    out = tmp_path / "runs"
    plugin = tmp_path / "hold_after_first_checkpoint.py"
    shutil.copy(Path(__file__).with_name(plugin.name), plugin)
    held, release = tmp_path / "held", tmp_path / "release"
    cli = [sys.executable, "-m", "sphere_rl.cli.app", "train"]
    first = subprocess.Popen([*cli, "--config", str(config), "--out", str(out), "--quiet",
                              "--plugin", str(plugin)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not held.exists() and first.poll() is None:
            time.sleep(0.1)
        assert held.exists(), "the first process never wrote its first checkpoint"
        run = Path(held.read_text())
        second = subprocess.run([*cli, "--resume", str(run), "--quiet"], capture_output=True,
                                text=True, timeout=300, env={**os.environ, "COLUMNS": "300"})  # fmt: skip
        assert first.poll() is None, "the first process must still hold the run"
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"being trained by another process (PID {first.pid})" in second.stderr
    finally:
        release.touch()
        output = first.communicate(timeout=600)[0]
    assert first.returncode == 0, output
    steps = [r["global_step"] for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "train"]
    assert steps == [100 * (i + 1) for i in range(10)]
