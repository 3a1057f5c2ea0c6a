"""A run resumes only its own checkpoint under its own configuration: a checkpoint copied from
another run, or a config.json edited since the start, is refused in one line (exit 2); an
intentional change goes through --allow-config-change and is recorded in run.json."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from cli_helpers import TINY_RUN, snapshot
from typer.testing import CliRunner

from sphere_rl.cli.app import _register_all, app
from sphere_rl.config import build_config, config_hash
from sphere_rl.continual.runner import ContinualRunner

_register_all()
SHORT = {**TINY_RUN, "steps_per_task": 100}  # one iteration: the other runs only lend checkpoints


@pytest.fixture(scope="session")
def _other_runs(tmp_path_factory) -> dict[str, Path]:
    """Short finished runs whose checkpoints get copied into the run under test."""
    root = tmp_path_factory.mktemp("others")
    variants = {"seed1": {"seed": 1}, "topk": {"method": "topk_moe"}, "ppo": {"method": "ppo"}}
    runs = {}
    for name, change in variants.items():
        runs[name] = root / name
        ContinualRunner.open(build_config({**SHORT, **change}), runs[name], False).run()
    return runs


@pytest.fixture
def topk_run(_other_runs, tmp_path) -> Path:
    run_dir = tmp_path / "runs" / "topk"
    shutil.copytree(_other_runs["topk"], run_dir)
    return run_dir


def _resume(run_dir: Path, *flags: str):
    return CliRunner().invoke(app, ["train", "--resume", str(run_dir), "--quiet", *flags])


def _refused(result) -> str:
    """The one-line refusal: exit 2, no traceback."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert "Traceback" not in result.output
    return " ".join(" ".join(lines).split())


def _copy_latest(source: Path, target: Path) -> None:
    shutil.copy(source / "checkpoints" / "latest.pt", target / "checkpoints" / "latest.pt")


def test_a_checkpoint_of_another_seed_is_refused(finished_run, _other_runs):
    _copy_latest(_other_runs["seed1"], finished_run)
    before = snapshot(finished_run)
    message = _refused(_resume(finished_run))
    assert "latest.pt belongs to another run: seed 1 (this run: 0)" in message
    assert "run_dir 'seed1' (this run: 'run')" in message
    assert snapshot(finished_run) == before


def test_a_sphere_checkpoint_in_a_topk_moe_run_is_refused(topk_run, finished_run):
    _copy_latest(finished_run, topk_run)  # same architecture: it would load without a word
    message = _refused(_resume(topk_run))
    assert "method 'sphere' (this run: 'topk_moe')" in message
    assert "config_hash" in message


def test_a_ppo_checkpoint_in_a_topk_moe_run_is_one_line(topk_run, _other_runs):
    _copy_latest(_other_runs["ppo"], topk_run)
    message = _refused(_resume(topk_run))
    assert "arch 'mlp' (this run: 'topk_moe')" in message


def test_an_older_ppo_checkpoint_without_identity_is_one_line_too(topk_run, _other_runs):
    payload = torch.load(_other_runs["ppo"] / "checkpoints/latest.pt", weights_only=False)
    del payload["identity"]  # as written before checkpoints carried their identity
    torch.save(payload, topk_run / "checkpoints" / "latest.pt")
    message = _refused(_resume(topk_run))
    assert "latest.pt does not fit this run's agent (topk_moe, topk_moe)" in message


def _edit_config(run_dir: Path, **change) -> dict:
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, **change}))
    return config


def test_config_json_edited_to_another_method_is_refused(topk_run):
    _edit_config(topk_run, method="sphere")
    before = snapshot(topk_run)
    message = _refused(_resume(topk_run))
    assert "config.json was changed after the run started" in message
    assert "differing keys: method: 'topk_moe' → 'sphere'" in message
    assert snapshot(topk_run) == before


def test_num_steps_edited_mid_run_is_refused(interrupted_run):
    _edit_config(interrupted_run, num_steps=25)
    message = _refused(_resume(interrupted_run))
    assert "differing keys: num_steps: 50 → 25" in message
    assert "--allow-config-change" in message


def test_an_allowed_change_is_recorded_and_sticks(interrupted_run):
    old = _edit_config(interrupted_run, eval_episodes=2)
    result = _resume(interrupted_run, "--allow-config-change", "--num-envs", "4")
    assert result.exit_code == 0, result.output
    info = json.loads((interrupted_run / "run.json").read_text())
    new = json.loads((interrupted_run / "config.json").read_text())
    assert new == {**old, "eval_episodes": 2, "num_envs": 4}
    assert info["segments"][-1]["config_change"] == {"eval_episodes": [1, 2], "num_envs": [2, 4]}
    assert info["config_hash"] == info["segments"][-1]["config_hash"] == config_hash(new)
    assert info["segments"][0]["config_hash"] == config_hash(old)
    # The accepted configuration is the run's now: a plain resume goes through.
    again = _resume(interrupted_run)
    assert again.exit_code == 0, again.output
    assert "already finished" in again.output


def test_allow_config_change_cannot_change_the_seed(interrupted_run):
    message = _refused(_resume(interrupted_run, "--allow-config-change", "--seed", "5"))
    assert "seed 0 (this run: 5)" in message


def test_allow_config_change_needs_resume(tmp_path):
    result = CliRunner().invoke(
        app, ["train", "--tasks", "reach-v3", "--out", str(tmp_path), "--allow-config-change"]
    )
    assert "--allow-config-change needs --resume" in _refused(result)
    assert list(tmp_path.iterdir()) == []
