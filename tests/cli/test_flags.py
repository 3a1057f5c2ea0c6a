"""Configuration flags are declared once, as command parameters named after their keys
(sphere_rl.cli.flags), and ``sphere train`` checks a task sequence once (issue #19)."""

import json
from typing import Any

import pytest
import typer
import typer.main
from cli_helpers import TINY_RUN, invoke
from typer.testing import CliRunner

from sphere_rl.cli.app import _register_all, app
from sphere_rl.cli.flags import CONFIG_KEYS, config_flags
from sphere_rl.config import build_config
from sphere_rl.continual import runner
from sphere_rl.continual.runner import run_dir_name

_register_all()

# One non-default value per `sphere train` configuration flag: the command line and the value the
# resolved configuration must hold. Every flag the command has must be here (see the test below).
TRAIN_FLAGS = {
    "tasks": (["--tasks", "reach-v3,push-v3"], ["reach-v3", "push-v3"]),
    "method": (["--method", "topk_moe"], "topk_moe"),
    "arch": (["--arch", "mlp_ln"], "mlp_ln"),
    "reg": (["--reg", "none"], "none"),
    "rho": (["--rho", "0.25"], 0.25),
    "sphere_mode": (["--sphere-mode", "fixed"], "fixed"),
    "sphere_variant": (["--sphere-variant", "all_layers"], "all_layers"),
    "pcgrad": (["--pcgrad"], True),
    "protocol": (["--protocol", "rl"], "rl"),
    "preset": (["--preset", "quick"], "quick"),
    "seed": (["--seed", "7"], 7),
    "steps_per_task": (["--steps-per-task", "30000"], 30_000),
    "num_envs": (["--num-envs", "3"], 3),
    "eval_interval": (["--eval-interval", "5000"], 5000),
    "eval_episodes": (["--eval-episodes", "3"], 3),
    "env_backend": (["--env-backend", "auto"], "auto"),
    "device": (["--device", "cuda:0"], "cuda:0"),
}
BENCHMARK_FLAG = (["--benchmark", "hb5"], "hb5")  # not beside --tasks


def _options(command: str) -> dict[str, Any]:
    """The options of ``sphere <command>`` by parameter name, as click parses them."""
    params = typer.main.get_command(app).commands[command].params
    return {p.name: p for p in params if p.param_type_name == "option"}


def test_a_parameter_named_after_a_key_is_that_keys_flag():
    received = {}
    toy = typer.Typer()

    @toy.command()
    def command(
        ctx: typer.Context,
        rho: float | None = None,
        seed: int | None = None,
        out: str = "runs",
        pcgrad: bool | None = typer.Option(None, "--pcgrad/--no-pcgrad"),
        num_envs: int | None = None,
    ) -> None:
        received.update(config_flags(command, ctx.params))

    result = CliRunner().invoke(toy, ["--no-pcgrad", "--out", "x", "--seed", "3", "--rho", "0.5"])
    assert result.exit_code == 0, result.output
    # Only the given keys, in the order the command declares them (not the command line's).
    assert list(received.items()) == [("rho", 0.5), ("seed", 3), ("pcgrad", False)]


def test_every_train_flag_sets_its_own_key(tmp_path, monkeypatch):
    import torch

    options = _options("train")
    flags = {name for name in options if name in CONFIG_KEYS}
    assert flags == {*TRAIN_FLAGS, "benchmark"}, "a flag without a test value, or one lost"
    for name in flags:  # the naming rule: --steps-per-task is steps_per_task
        assert "--" + name.replace("_", "-") in options[name].opts, name
    # --device cuda:0 passes the device check on a machine without a GPU.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    out = ("--out", str(tmp_path / "runs"), "--dry-run")
    given = [arg for args, _ in TRAIN_FLAGS.values() for arg in args]
    result = invoke("train", *given, *out)
    assert result.exit_code == 0, result.output
    resolved = json.loads(result.stdout)
    for key, (_, value) in TRAIN_FLAGS.items():
        assert resolved[key] == value, key
    result = invoke("train", *BENCHMARK_FLAG[0], *out)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["benchmark"] == BENCHMARK_FLAG[1]
    assert not (tmp_path / "runs").exists()


def test_sweep_flags_named_after_keys_are_shared_by_every_run(tmp_path):
    """--benchmark is a grid axis (several values); --tasks, --preset, --steps-per-task are keys."""
    assert {n for n in _options("sweep") if n in CONFIG_KEYS} == {
        "benchmark", "tasks", "preset", "steps_per_task"}  # fmt: skip
    result = invoke("sweep", "--methods", "ppo", "--protocols", "rl", "--tasks", "reach-v3",
                    "--steps-per-task", "40000", "--preset", "quick", "--out",
                    str(tmp_path / "runs"), "--dry-run")  # fmt: skip
    assert result.exit_code == 0, result.output
    cfg = build_config({"method": "ppo", "protocol": "rl", "tasks": "reach-v3", "benchmark": None,
                        "steps_per_task": 40_000, "preset": "quick"})  # fmt: skip
    assert run_dir_name(cfg) in result.text and "1 new" in result.text


@pytest.mark.parametrize("resume", [False, True], ids=["new", "resume"])
def test_train_checks_the_sequence_once(resume, finished_run, tmp_path, monkeypatch):
    calls = []
    check = runner.check_sequence
    monkeypatch.setattr(runner, "check_sequence", lambda cfg: calls.append(cfg) or check(cfg))
    if resume:  # a finished run: opened (and its sequence checked), nothing trained
        args = ["--resume", str(finished_run)]
    else:  # a new run, created; training itself is not needed here
        finished = {"state": "finished", "global_step": 0}
        monkeypatch.setattr(runner.ContinualRunner, "run", lambda self, track=None: finished)
        config = tmp_path / "tiny.json"
        config.write_text(json.dumps(TINY_RUN))
        args = ["--config", str(config), "--out", str(tmp_path / "new")]
    result = invoke("train", *args, "--quiet")
    assert result.exit_code == 0, result.output
    assert len(calls) == 1
