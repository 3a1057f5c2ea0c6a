"""Checkpoints never change what training sees, and resume stays exact.

The configurations here make a checkpoint segment (one iteration) much shorter than an episode, the
situation of the paper presets (hb5: 768 steps per segment and environment, 1000-step episodes).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import sphere_rl.continual.runner as runner_module
from sphere_rl.config import build_config
from sphere_rl.continual.rundir import read_jsonl
from sphere_rl.continual.runner import ContinualRunner, ResumeError
from sphere_rl.continual.seeding import training_envs
from sphere_rl.envs import task_spec

SMALL = {
    "benchmark": None,
    "method": "sphere",
    "preset": "quick",
    "hidden": [16],
    "n_experts": 3,
    "num_envs": 2,
    "update_epochs": 2,
    "eval_interval": 10**9,
    "eval_episodes": 1,
    "diag_interval": 10**9,
    "diag_samples": 8,
}
# One iteration = 50 steps against 500-step episodes; 11 iterations end one episode.
METAWORLD = {**SMALL, "tasks": "reach-v3", "num_envs": 1, "num_steps": 50, "minibatch_size": 50,
             "steps_per_task": 550, "checkpoint_interval": 50}  # fmt: skip
# One iteration = 16 steps per env against 1000-step episodes (hb5's rollout length).
H1 = {**SMALL, "tasks": "h1-stand", "num_steps": 16, "minibatch_size": 32,
      "steps_per_task": 800, "checkpoint_interval": 32}  # fmt: skip


class TrainingEnvLog:
    """What the runner's training environments did: resets, and each ended episode with the
    number of steps its environment really took since its previous episode (or reset)."""

    def __init__(self) -> None:
        self.resets: list[str] = []
        self.episodes: list[tuple[str, int, int, bool, int]] = []

    def instrument(self, env):
        log, reset, step = self, env.reset, env.step
        steps = np.zeros(env.num_envs, dtype=np.int64)

        def logged_reset(seed=None):
            log.resets.append(env.task)
            steps[:] = 0
            return reset(seed=seed)

        def logged_step(actions):
            out = step(actions)
            steps[:] += 1
            for i in np.flatnonzero(out.done):
                log.episodes.append((env.task, int(i), int(out.episode_length[i]),
                                     bool(out.terminated[i]), int(steps[i])))  # fmt: skip
                steps[i] = 0
            return out

        env.reset, env.step = logged_reset, logged_step
        return env


def _train(overrides: dict, run_dir: Path, monkeypatch) -> TrainingEnvLog:
    log = TrainingEnvLog()
    monkeypatch.setattr(
        runner_module, "training_envs", lambda *a, **k: log.instrument(training_envs(*a, **k))
    )
    ContinualRunner.open(build_config(overrides), run_dir, show_progress=False).run()
    return log


def _train_records(run_dir: Path) -> list[dict]:
    keep = ("global_step", "pg_loss", "v_loss", "episode/count", "episode/return")
    return [
        {k: r[k] for k in keep}
        for r in read_jsonl(run_dir / "metrics.jsonl")
        if r["kind"] == "train"
    ]


@pytest.mark.parametrize("overrides", [METAWORLD, H1], ids=["metaworld", "h1"])
def test_checkpoints_do_not_cut_episodes(overrides, tmp_path, monkeypatch):
    checkpointed = _train(overrides, tmp_path / "segments", monkeypatch)
    straight = _train({**overrides, "checkpoint_interval": 10**9}, tmp_path / "one", monkeypatch)
    task = overrides["tasks"]
    limit = task_spec(task).max_episode_steps
    segment = overrides["checkpoint_interval"] // overrides["num_envs"]  # steps per env
    # Seeded once at the task start, never reset by a checkpoint.
    assert checkpointed.resets == [task]
    assert checkpointed.episodes, "no training episode ended"
    for _, _, length, terminated, steps in checkpointed.episodes:
        assert length == steps  # an episode's statistics cover every step its env took
        assert terminated or length == limit  # only the time limit or a termination ends one
    assert max(length for _, _, length, _, _ in checkpointed.episodes) > segment
    # Identical to the run that checkpoints only once: the same episodes and the same training.
    assert checkpointed.episodes == straight.episodes
    assert _train_records(tmp_path / "segments") == _train_records(tmp_path / "one")
    ckpt = torch.load(tmp_path / "segments/checkpoints/latest.pt", weights_only=False)
    assert ckpt["env"] is None  # after the task end: nothing in flight


# ------------------------------------------------------------------------------ SIGKILL + resume
def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from sphere_rl.cli.app import main; main()", *args]


def _read_eval(run_dir: Path) -> list[dict]:
    with open(run_dir / "eval.csv") as f:
        return list(csv.DictReader(f))


def _kill_and_resume(overrides: dict, kill_after: int, tmp_path: Path) -> None:
    config_file = tmp_path / "cfg.json"
    config_file.write_text(json.dumps(overrides))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def train(out: Path) -> list[str]:
        return _cli("train", "--config", str(config_file), "--out", str(out), "--quiet")

    straight = tmp_path / "straight"
    subprocess.run(train(straight), check=True, env=env, timeout=600)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(train(killed), env=env)
    metrics = None
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        runs = list(killed.glob("*/metrics.jsonl"))
        if runs and sum(r["kind"] == "train" for r in read_jsonl(runs[0])) >= kill_after:
            metrics = runs[0]
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert metrics is not None, "the run finished before it could be killed"
    run_dir = metrics.parent
    assert json.loads((run_dir / "status.json").read_text())["state"] == "running"
    # The resume point is mid-task with episodes in flight: it continues them from the snapshot.
    ckpt = torch.load(run_dir / "checkpoints/latest.pt", weights_only=False)
    assert ckpt["state"]["iteration"] > 0 and ckpt["env"]["episode_length"].any()
    subprocess.run(
        _cli("train", "--resume", str(run_dir), "--quiet"), check=True, env=env, timeout=600
    )
    (straight_dir,) = list(straight.iterdir())
    assert _read_eval(run_dir) == _read_eval(straight_dir)
    assert _train_records(run_dir) == _train_records(straight_dir)
    assert json.loads((run_dir / "status.json").read_text())["state"] == "finished"


def test_h1_kill_and_resume_gives_identical_results(tmp_path):
    overrides = {**H1, "tasks": "h1-stand,h1-walk", "steps_per_task": 192,
                 "eval_interval": 128, "diag_interval": 128}  # fmt: skip
    _kill_and_resume(overrides, kill_after=8, tmp_path=tmp_path)


@pytest.mark.slow
def test_metaworld_async_kill_and_resume_gives_identical_results(tmp_path):
    """The reference MetaWorld backend in worker processes: snapshots travel through the pipes."""
    overrides = {**METAWORLD, "tasks": "reach-v3,window-close-v3", "num_envs": 2,
                 "checkpoint_interval": 100, "steps_per_task": 500, "vectorization": "async",
                 "eval_interval": 200}  # fmt: skip
    _kill_and_resume(overrides, kill_after=7, tmp_path=tmp_path)


# ------------------------------------------------------------------- backends without snapshots
def test_envpool_checkpoints_wait_for_a_common_episode_start(tmp_path, monkeypatch, capsys):
    """envpool cannot snapshot: a due checkpoint (every iteration here) waits until every env has
    just reset (iteration 10: 10 × 50 steps = one 500-step episode), where the envs are re-seeded
    without cutting an episode; a crash after it resumes exactly from there."""
    pytest.importorskip("envpool")
    overrides = {**METAWORLD, "tasks": "push-wall-v3", "env_backend": "envpool",
                 "steps_per_task": 750, "checkpoint_interval": 50}  # fmt: skip
    saved_at: list[int] = []
    save = ContinualRunner._save_checkpoint

    def logged_save(self, env=None):
        saved_at.append(self.state.iteration)
        save(self, env)

    monkeypatch.setattr(ContinualRunner, "_save_checkpoint", logged_save)
    log = _train(overrides, tmp_path / "straight", monkeypatch)
    assert "cannot be snapshotted" in capsys.readouterr().err
    assert saved_at == [0, 10, 0]  # task start, the common episode start, after the task end
    assert log.resets == ["push-wall-v3"] * 2
    assert [(length, steps) for *_, length, _, steps in log.episodes] == [(500, 500)]

    train_iteration = runner_module.train_iteration

    def crash_at_12(agent, env, obs, cfg, iteration):
        if iteration == 12:
            raise KeyboardInterrupt  # anything that ends the process mid-task
        return train_iteration(agent, env, obs, cfg, iteration)

    monkeypatch.setattr(runner_module, "train_iteration", crash_at_12)
    with pytest.raises(KeyboardInterrupt):
        _train(overrides, tmp_path / "crashed", monkeypatch)
    monkeypatch.setattr(runner_module, "train_iteration", train_iteration)
    ContinualRunner.open(None, tmp_path / "crashed", show_progress=False).run()
    assert _train_records(tmp_path / "crashed") == _train_records(tmp_path / "straight")
    assert _read_eval(tmp_path / "crashed") == _read_eval(tmp_path / "straight")


def test_unloadable_environment_snapshot_is_a_resume_error(tmp_path, monkeypatch):
    train_iteration = runner_module.train_iteration

    def crash_at_2(agent, env, obs, cfg, iteration):
        if iteration == 2:
            raise KeyboardInterrupt
        return train_iteration(agent, env, obs, cfg, iteration)

    monkeypatch.setattr(runner_module, "train_iteration", crash_at_2)
    with pytest.raises(KeyboardInterrupt):
        ContinualRunner.open(build_config(H1), tmp_path / "run", show_progress=False).run()
    path = tmp_path / "run/checkpoints/latest.pt"
    payload = torch.load(path, weights_only=False)
    payload["env"]["envs"][1]["env"]["physics"] = np.zeros(3)  # e.g. another simulator version
    torch.save(payload, path)
    monkeypatch.setattr(runner_module, "train_iteration", train_iteration)
    with pytest.raises(ResumeError, match=r"latest.pt: its snapshot of the training environments"):
        ContinualRunner.open(None, tmp_path / "run", show_progress=False).run()
