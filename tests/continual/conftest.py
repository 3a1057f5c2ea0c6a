"""A tiny MetaWorld configuration: real physics, seconds per run."""

import pytest

TINY = {
    "benchmark": None,
    "tasks": "reach-v3,window-close-v3",
    "method": "sphere",
    "preset": "quick",
    "hidden": [16],
    "n_experts": 3,
    "num_envs": 2,
    "num_steps": 50,
    "minibatch_size": 50,
    "update_epochs": 2,
    "steps_per_task": 300,
    "checkpoint_interval": 100,
    "eval_interval": 200,
    "eval_episodes": 1,
    "diag_interval": 200,
    "diag_samples": 8,
}


@pytest.fixture
def tiny_overrides():
    return dict(TINY)
