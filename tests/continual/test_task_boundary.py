"""What crosses a CRL task boundary: Adam moments carried (release) or reset, LR restarted."""

import pytest
import torch

from sphere_rl.config import build_config
from sphere_rl.continual.checkpoint import load_checkpoint
from sphere_rl.continual.runner import ContinualRunner

BETA1, BETA2 = 0.9, 0.999


def run_two_tasks(tmp_path, **extra):
    """Two tasks of ONE update each (one iteration, one epoch, one minibatch)."""
    overrides = {
        "benchmark": None,
        "tasks": "gym:Pendulum-v1,gym:Pendulum-v1",
        "method": "ppo",
        "preset": "quick",
        "hidden": [16],
        "num_envs": 2,
        "eval_episodes": 1,
        "diag_samples": 8,
        "num_steps": 50,
        "minibatch_size": 100,
        "update_epochs": 1,
        "steps_per_task": 100,
        "eval_interval": 10**9,
        "diag_interval": 10**9,
        "diag_entk": False,
        "checkpoint_interval": 10**9,
        "lr_schedule": "kl_adaptive",  # task 1 moves the LR away from 3e-4
        **extra,
    }
    run_dir = tmp_path / "run"
    ContinualRunner.open(build_config(overrides), run_dir, show_progress=False).run()
    task1 = load_checkpoint(run_dir / "checkpoints" / "task_000_end.pt")["agent"]
    task2 = load_checkpoint(run_dir / "checkpoints" / "task_001_end.pt")["agent"]
    return task1, task2


def _moments(opt_state):
    return [opt_state["state"][i] for i in sorted(opt_state["state"])]


def test_adam_moments_carry_into_task_two(tmp_path):
    task1, task2 = run_two_tasks(tmp_path)
    for net in ("actor_optimizer", "critic_optimizer"):
        check_carried(task1[net], task2[net])


def check_carried(task1, task2):
    assert task1["param_groups"][0]["lr"] == pytest.approx(3e-4 * 1.5)  # adapted in task 1
    # Task 2's single update ran at the restarted rate, then adapted once: 3e-4 × 1.5 again
    # (KL ≈ 0 on the first minibatch of a rollout), not 3e-4 × 1.5².
    assert task2["param_groups"][0]["lr"] == pytest.approx(3e-4 * 1.5)
    for before, after in zip(_moments(task1), _moments(task2), strict=True):
        assert float(after["step"]) == float(before["step"]) + 1
        # Adam from task 1's state: m₂ = β1 m₁ + (1−β1) g and v₂ = β2 v₁ + (1−β2) g², for the
        # same g. Recover g from m and check v: a reset optimiser (m₁ = v₁ = 0) breaks it.
        g = (after["exp_avg"] - BETA1 * before["exp_avg"]) / (1 - BETA1)
        expected_v = BETA2 * before["exp_avg_sq"] + (1 - BETA2) * g.square()
        torch.testing.assert_close(after["exp_avg_sq"], expected_v, rtol=1e-4, atol=1e-12)
        assert before["exp_avg_sq"].abs().sum() > 0


def test_reset_optimizer_option_starts_adam_afresh(tmp_path):
    task1, task2 = run_two_tasks(tmp_path, carry_optimizer=False)
    for before, after in zip(
        _moments(task1["actor_optimizer"]), _moments(task2["actor_optimizer"]), strict=True
    ):
        assert float(before["step"]) == 1 and float(after["step"]) == 1
        g = after["exp_avg"] / (1 - BETA1)  # fresh state: m = (1−β1) g, v = (1−β2) g²
        torch.testing.assert_close(after["exp_avg_sq"], (1 - BETA2) * g.square(), rtol=1e-4,
                                   atol=1e-12)  # fmt: skip
