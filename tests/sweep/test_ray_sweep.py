"""``sphere sweep`` on a local Ray instance with tiny real runs."""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from sweep_setup import ONE_TASK, TWO_TASKS, sweep_cmd

from sphere_rl.config import build_config
from sphere_rl.continual.rundir import read_json
from sphere_rl.continual.runner import run_dir_name

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}


def _states(out: Path) -> dict[str, str]:
    return {p.parent.name: read_json(p)["state"] for p in out.glob("*/status.json")}


def _summary(out: Path) -> dict[str, dict]:
    return {o["name"]: o for o in json.loads((out / "sweep_summary.json").read_text())}


def _name(method: str, seed: int) -> str:
    return run_dir_name(
        build_config({**ONE_TASK, "method": method, "protocol": "crl", "seed": seed})
    )


def test_sweep_trains_reports_a_failure_and_skips_finished_runs(tmp_path, config_file):
    cfg_file, out = config_file(ONE_TASK), tmp_path / "runs"
    # One run of the grid already exists with a corrupt checkpoint: its resume fails.
    broken = build_config({**ONE_TASK, "method": "ppo", "protocol": "crl", "seed": 1})
    broken_dir = out / run_dir_name(broken)
    (broken_dir / "checkpoints").mkdir(parents=True)
    (broken_dir / "config.json").write_text(json.dumps(broken.to_dict()))
    (broken_dir / "run.json").write_text(json.dumps({"tasks": ["reach-v3"]}))
    (broken_dir / "checkpoints/latest.pt").write_bytes(b"corrupt")

    args = ("--methods", "ppo,sphere", "--seeds", "0-1", "--protocols", "crl")
    first = subprocess.run(
        sweep_cmd(cfg_file, out, *args), env=ENV, capture_output=True, text=True, timeout=600
    )
    assert first.returncode == 1, first.stdout + first.stderr
    summary = _summary(out)
    assert {n: o["result"] for n, o in summary.items()} == {
        _name("ppo", 0): "finished", _name("ppo", 1): "failed",
        _name("sphere", 0): "finished", _name("sphere", 1): "finished",
    }  # fmt: skip
    assert summary[_name("ppo", 1)]["action"] == "resume"
    assert "UnpicklingError" in summary[_name("ppo", 1)]["error"]
    assert "sweep summary" in first.stdout and "3 finished" in first.stdout
    assert _name("ppo", 1) in first.stderr and "UnpicklingError" in first.stderr
    for name in (_name("ppo", 0), _name("sphere", 1)):
        assert "task 1/1: reach-v3" in (out / name / "sweep.log").read_text()

    # Same sweep again (the healthy seed): nothing is retrained and Ray is not even started.
    before = {p: p.read_bytes() for p in out.glob("*-s0-*/metrics.jsonl")}
    second = subprocess.run(
        sweep_cmd(cfg_file, out, "--methods", "ppo,sphere", "--seeds", "0", "--protocols", "crl"),
        env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert second.returncode == 0, second.stdout + second.stderr
    assert "(2 skip)" in second.stdout and "Token authentication" not in second.stderr
    assert {o["result"] for o in _summary(out).values()} == {"skipped"}
    assert before == {p: p.read_bytes() for p in out.glob("*-s0-*/metrics.jsonl")}


def _session_alive(session: int) -> bool:
    """Whether any process of this session (the killed driver's Ray workers) still runs."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == session:  # field 6 of stat: session id
            return True
    return False


@pytest.mark.slow
def test_sweep_killed_mid_way_resumes_and_skips_finished_runs(tmp_path, config_file):
    cfg_file, out = config_file(TWO_TASKS), tmp_path / "runs"
    # The first run to write a checkpoint then waits to be killed: it cannot finish before the
    # kill on any machine, so exactly that run must resume (the test used to race the workers).
    plugin = tmp_path / "block_first_checkpoint.py"
    shutil.copy(Path(__file__).with_name(plugin.name), plugin)
    blocked_file = tmp_path / "blocked"
    args = (
        "--methods",
        "ppo,sphere",
        "--seeds",
        "0-1",
        "--protocols",
        "crl",
        "--plugin",
        str(plugin),
    )
    driver = subprocess.Popen(
        sweep_cmd(cfg_file, out, *args), env=ENV, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline, killed = time.time() + 600, False
    while time.time() < deadline and driver.poll() is None:
        if blocked_file.exists() and "finished" in _states(out).values():
            os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray head it started
            killed = True
            break
        time.sleep(0.2)
    driver.wait(timeout=60)
    assert killed, "the sweep ended, or no run finished, before the blocked run was killed"
    # Ray's workers live in their own process groups; they exit once the raylet is gone.
    while _session_alive(driver.pid) and time.time() < deadline:
        time.sleep(0.5)
    assert not _session_alive(driver.pid)
    blocked = Path(blocked_file.read_text()).name
    assert (out / blocked / "checkpoints/latest.pt").exists()
    # Read after the workers are gone: one that was mid-run at the kill may still have finished
    # its run before its raylet died.
    finished = {n for n, s in _states(out).items() if s == "finished"}
    assert finished and blocked not in finished
    before = {n: (out / n / "metrics.jsonl").read_bytes() for n in finished}

    second = subprocess.run(
        sweep_cmd(cfg_file, out, *args), env=ENV, capture_output=True, text=True, timeout=900
    )
    assert second.returncode == 0, second.stdout + second.stderr
    summary = _summary(out)
    assert len(summary) == 4 and set(_states(out).values()) == {"finished"}
    for name, outcome in summary.items():
        if name in finished:
            assert outcome["action"] == "skip" and outcome["result"] == "skipped"
            assert (out / name / "metrics.jsonl").read_bytes() == before[name]
        else:
            assert outcome["result"] == "finished"
    assert summary[blocked]["action"] == "resume", "a run killed after a checkpoint must resume"
    records = [
        json.loads(line) for line in (out / blocked / "metrics.jsonl").read_text().splitlines()
    ]
    steps = [r["global_step"] for r in records if r["kind"] == "train"]
    assert steps == sorted(set(steps)) and steps[-1] == 600  # continued, nothing trained twice
