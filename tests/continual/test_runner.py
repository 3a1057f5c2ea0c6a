"""The continual runner: run-directory schema, exact kill-and-resume, config and NaN guards."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sphere_rl.config import ConfigError, build_config
from sphere_rl.continual.rundir import read_jsonl
from sphere_rl.continual.runner import ContinualRunner, ResumeError


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from sphere_rl.cli.app import main; main()", *args]


def _train_cmd(config_file: Path, out: Path) -> list[str]:
    return _cli("train", "--config", str(config_file), "--out", str(out), "--quiet")


def _read_eval(run_dir: Path) -> list[dict]:
    with open(run_dir / "eval.csv") as f:
        return list(csv.DictReader(f))


def _train_records(run_dir: Path) -> list[dict]:
    keep = ("global_step", "pg_loss", "v_loss", "episode/return", "reg/sphere")
    return [
        {k: r[k] for k in keep}
        for r in read_jsonl(run_dir / "metrics.jsonl")
        if r["kind"] == "train"
    ]


def test_run_directory_schema(tmp_path, tiny_overrides):
    cfg = build_config({**tiny_overrides, "protocol": "crl"})
    runner = ContinualRunner.open(cfg, tmp_path / "run", show_progress=False)
    status = runner.run()
    run = tmp_path / "run"
    assert status["state"] == "finished" and status["global_step"] == 600
    assert json.loads((run / "config.json").read_text()) == cfg.to_dict()
    assert json.loads((run / "run.json").read_text())["tasks"] == ["reach-v3", "window-close-v3"]
    records = read_jsonl(run / "metrics.jsonl")
    kinds = {r["kind"] for r in records}
    assert kinds == {"train", "eval", "diag"}
    train = [r for r in records if r["kind"] == "train"]
    assert [r["global_step"] for r in train] == [100 * (i + 1) for i in range(6)]
    # SPHERE's per-minibatch scale s (not ρ) under its own name (regularizers/combine.py).
    assert all("reg/sphere_scale" in r and "reg/sphere_coef" not in r for r in train)
    diag = [r for r in records if r["kind"] == "diag"]
    assert all("entk/effective_rank" in r for r in diag)
    evals = _read_eval(run)
    # CRL: periodic evals of seen tasks (step 200 on task 0; step 500 on task 1: both tasks),
    # then every task at each task end.
    task_end = [(int(r["global_step"]), r["eval_task"]) for r in evals if r["kind"] == "task_end"]
    assert task_end == [(300, "reach-v3"), (300, "window-close-v3"),
                        (600, "reach-v3"), (600, "window-close-v3")]  # fmt: skip
    periodic = [(int(r["global_step"]), r["eval_task"]) for r in evals if r["kind"] == "periodic"]
    assert periodic == [(200, "reach-v3"), (400, "reach-v3"), (400, "window-close-v3")]
    ckpts = sorted(p.name for p in (run / "checkpoints").glob("*.pt"))
    assert ckpts == ["latest.pt", "task_000_end.pt", "task_001_end.pt"]
    assert list((run / "tb").glob("events.out.tfevents.*"))
    # Resuming a finished run is a no-op.
    again = ContinualRunner.open(None, run, show_progress=False)
    assert again.run()["state"] == "finished"
    assert len(read_jsonl(run / "metrics.jsonl")) == len(records)


def test_rl_protocol_uses_fresh_agent_per_task(tmp_path, tiny_overrides):
    cfg = build_config({**tiny_overrides, "protocol": "rl", "eval_interval": 10_000})
    runner = ContinualRunner.open(cfg, tmp_path / "rl", show_progress=False)
    runner.run()
    evals = _read_eval(tmp_path / "rl")
    # RL evaluates only the task being trained.
    assert [(r["train_task"], r["eval_task"]) for r in evals] == [
        ("reach-v3", "reach-v3"),
        ("window-close-v3", "window-close-v3"),
    ]
    first = torch.load(tmp_path / "rl/checkpoints/task_000_end.pt", weights_only=False)
    second = torch.load(tmp_path / "rl/checkpoints/task_001_end.pt", weights_only=False)
    # The second task's initial weights are a fresh draw, not the first task's final weights.
    key = "expert_head.weight"
    assert not torch.equal(first["initial_actor"][key], second["initial_actor"][key])


def test_kill_and_resume_gives_identical_results(tmp_path, tiny_overrides):
    config_file = tmp_path / "cfg.json"
    config_file.write_text(json.dumps(tiny_overrides))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    straight = tmp_path / "straight"
    subprocess.run(_train_cmd(config_file, straight), check=True, env=env, timeout=600)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(config_file, killed), env=env)
    metrics = None
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        runs = list(killed.glob("*/metrics.jsonl"))
        # Kill mid-way through the second task, between checkpoints.
        if runs and sum(r["kind"] == "train" for r in read_jsonl(runs[0])) >= 4:
            metrics = runs[0]
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert metrics is not None, "the run finished before it could be killed"
    run_dir = metrics.parent
    assert json.loads((run_dir / "status.json").read_text())["state"] == "running"
    subprocess.run(
        _cli("train", "--resume", str(run_dir), "--quiet"), check=True, env=env, timeout=600
    )
    (straight_dir,) = list(straight.iterdir())
    assert _read_eval(run_dir) == _read_eval(straight_dir)
    assert _train_records(run_dir) == _train_records(straight_dir)
    assert json.loads((run_dir / "status.json").read_text())["state"] == "finished"


def test_resume_with_changed_config_is_refused(tmp_path, tiny_overrides):
    cfg = build_config({**tiny_overrides, "steps_per_task": 100, "tasks": "reach-v3"})
    ContinualRunner.open(cfg, tmp_path / "run", show_progress=False)
    changed = build_config({**tiny_overrides, "steps_per_task": 100, "tasks": "reach-v3",
                            "seed": 3, "rho": 0.5})  # fmt: skip
    with pytest.raises(ResumeError, match=r"differing keys: rho: 0.001 → 0.5, seed: 0 → 3"):
        ContinualRunner.open(changed, tmp_path / "run", show_progress=False)
    with pytest.raises(ResumeError, match="not a run directory"):
        ContinualRunner.open(None, tmp_path / "empty", show_progress=False)


def test_cli_reports_every_config_problem_at_once(tmp_path):
    result = subprocess.run(
        _cli("train", "--method", "sphere", "--num-envs", "0", "--protocol", "both",
             "--out", str(tmp_path), "--quiet"),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "protocol must be one of ('crl', 'rl'), got 'both'" in result.stderr
    assert "num_envs must be > 0, got 0" in result.stderr
    assert not list(tmp_path.iterdir())  # nothing was started


def test_unknown_keys_and_values_are_reported():
    with pytest.raises(ConfigError) as err:
        build_config({"lerning_rate": 1e-3, "gamma": 1.5, "tasks": "reach-v3", "top_k": 20})
    message = str(err.value)
    assert "unknown key 'lerning_rate'" in message
    assert "gamma must be in [0, 1], got 1.5" in message
    assert "top_k must be <= n_experts=10" in message
    with pytest.raises(ValueError, match=r"unknown method .spheer. \(did you mean .sphere.\?\)"):
        ContinualRunner(build_config({"method": "spheer"}), Path("/nonexistent"))


def test_crl_refuses_tasks_with_different_sizes(tiny_overrides, tmp_path):
    cfg = build_config({**tiny_overrides, "tasks": "reach-v3,h1-stand"})
    with pytest.raises(
        ValueError, match=r"reach-v3 \(obs 39, act 4\), h1-stand \(obs 51, act 19\)"
    ):
        ContinualRunner(cfg, tmp_path / "run")


def test_nan_loss_stops_the_run_and_keeps_the_last_checkpoint(
    tmp_path, tiny_overrides, monkeypatch
):
    cfg = build_config({**tiny_overrides, "tasks": "reach-v3"})
    runner = ContinualRunner.open(cfg, tmp_path / "run", show_progress=False)
    calls = {"n": 0}

    def poisoned(agent, buffer, advantages, returns):
        calls["n"] += 1
        if calls["n"] == 2:  # after one good update, corrupt a weight
            with torch.no_grad():
                next(agent.actor.parameters()).fill_(float("nan"))
        return original(agent, buffer, advantages, returns)

    from sphere_rl.algo.ppo import NonFiniteLossError, PPOAgent

    original = PPOAgent.update
    monkeypatch.setattr(PPOAgent, "update", poisoned)

    with pytest.raises(NonFiniteLossError, match="non-finite"):
        runner.run()
    status = json.loads((tmp_path / "run/status.json").read_text())
    assert status["state"] == "failed" and "non-finite" in status["error"]
    payload = torch.load(tmp_path / "run/checkpoints/latest.pt", weights_only=False)
    assert all(torch.isfinite(v).all() for v in payload["agent"]["actor"].values())
