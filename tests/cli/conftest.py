"""Fixtures of the CLI tests: one tiny finished run (real MetaWorld), copied per test, and a
snapshot of a directory tree to prove a command changed nothing on disk."""

import json
import shutil
from pathlib import Path

import pytest

from sphere_rl.config import build_config
from sphere_rl.continual.runner import ContinualRunner

# One task, two PPO iterations, a checkpoint per iteration: a few seconds.
TINY_RUN = {
    "benchmark": None,
    "tasks": "reach-v3",
    "method": "sphere",
    "preset": "quick",
    "hidden": [16],
    "n_experts": 3,
    "num_envs": 2,
    "num_steps": 50,
    "minibatch_size": 50,
    "update_epochs": 1,
    "steps_per_task": 200,
    "checkpoint_interval": 100,
    "eval_interval": 100,
    "eval_episodes": 1,
    "diag_interval": 10_000,
    "diag_samples": 8,
    "diag_entk": False,
}


@pytest.fixture(scope="session")
def _finished_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    ContinualRunner.open(build_config(TINY_RUN), run_dir, show_progress=False).run()
    return run_dir


@pytest.fixture
def finished_run(_finished_run, tmp_path) -> Path:
    """A fresh copy of a finished tiny run (its state can be edited freely)."""
    run_dir = tmp_path / "runs" / "run"
    shutil.copytree(_finished_run, run_dir)
    return run_dir


@pytest.fixture
def interrupted_run(finished_run) -> Path:
    """The finished run as a kill after its last checkpoint leaves it: status ``running``."""
    status = json.loads((finished_run / "status.json").read_text())
    (finished_run / "status.json").write_text(json.dumps({**status, "state": "running"}))
    return finished_run


def snapshot(root: Path, ignore: tuple[str, ...] = (".lock",)) -> dict[str, tuple]:
    """Every path under ``root`` with its bytes (files) and mode: equal snapshots mean nothing was
    created, deleted or changed. The run lock file is ignored: taking the lock is not a change."""
    root = Path(root)
    if not root.exists():
        return {}
    tree = {}
    for path in sorted(root.rglob("*")):
        if path.name in ignore:
            continue
        data = path.read_bytes() if path.is_file() else None
        tree[str(path.relative_to(root))] = (data, path.stat().st_mode)
    return tree
