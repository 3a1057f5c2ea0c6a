"""Shared by the CLI tests: a tiny run configuration, and a snapshot of a directory tree to prove
a command changed nothing on disk."""

from pathlib import Path

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


def invoke(*args: str):
    """``sphere ARGS`` in this process; ``result.text`` is the output with its line wraps undone."""
    from typer.testing import CliRunner

    from sphere_rl.cli.app import _register_all, app

    _register_all()
    result = CliRunner().invoke(app, list(args), terminal_width=300)
    result.text = " ".join(result.output.split())
    return result
