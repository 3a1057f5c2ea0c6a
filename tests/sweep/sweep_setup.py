"""Tiny sweep configurations (real MetaWorld) and the sweep command line."""

import sys
from pathlib import Path

# One short task: a run is mostly process start-up, which is what a sweep test exercises.
ONE_TASK = {
    "benchmark": None,
    "tasks": "reach-v3",
    "preset": "quick",
    "hidden": [16],
    "n_experts": 3,
    "num_envs": 2,
    "num_steps": 50,
    "minibatch_size": 50,
    "update_epochs": 2,
    "steps_per_task": 200,
    "checkpoint_interval": 100,
    "eval_interval": 10_000,
    "eval_episodes": 1,
    "diag_interval": 10_000,
    "diag_samples": 8,
}
# Two tasks with a checkpoint every iteration, long enough to be killed in the middle.
TWO_TASKS = {**ONE_TASK, "tasks": "reach-v3,window-close-v3", "steps_per_task": 300}


def sweep_cmd(config_file: Path, out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "sphere_rl.cli.app", "sweep", "--config", str(config_file),
            "--out", str(out), "--num-cpus", "2", *args]  # fmt: skip
