"""``sphere train/sweep KEY=VALUE``: validated like --config, last in precedence; ``sphere
--version``; the resolved configuration printed when training starts."""

import dataclasses
import json

from cli_helpers import TINY_RUN, invoke

import sphere_rl
from sphere_rl.config import ExperimentConfig, build_config
from sphere_rl.continual.runner import run_dir_name


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout == f"sphere-rl {sphere_rl.__version__}\n"


def test_overrides_are_parsed_as_json_and_win_over_flags_and_config(tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"rho": 0.2, "lr": 1e-4, "seed": 4}))
    result = invoke(
        "train", "--preset", "quick", "--config", str(config), "--rho", "0.3", "rho=0.4",
        "hidden=[32,32]", "norm_obs=false", "tasks=reach-v3,push-v3", "device=cpu",
        "--out", str(tmp_path / "runs"), "--dry-run",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    expected = build_config({"preset": "quick", "lr": 1e-4, "seed": 4, "rho": 0.4,
                             "hidden": [32, 32], "norm_obs": False, "benchmark": None,
                             "tasks": "reach-v3,push-v3"})  # fmt: skip
    assert json.loads(result.stdout) == expected.to_dict()
    assert not (tmp_path / "runs").exists()


def test_bad_overrides_are_one_line_and_exit_2(tmp_path):
    out = ("--out", str(tmp_path / "runs"), "--dry-run")
    cases = {
        "rhoo=1": "unknown key 'rhoo' (did you mean 'rho'?)",
        "rho=abc": "rho must be of type",
        "rho=-1": "rho must be >= 0, got -1",
        "rho": "'rho' is neither an option nor KEY=VALUE",
        "=3": "'=3' is neither an option nor KEY=VALUE",
    }
    for item, message in cases.items():
        result = invoke("train", "--preset", "quick", item, *out)
        assert result.exit_code == 2, (item, result.output)
        assert result.output.count("\n") == 1 and message in result.text, (item, result.output)
    twice = invoke("train", "rho=1", "rho=2", *out)
    assert twice.exit_code == 2 and "rho is given twice" in twice.text
    assert not (tmp_path / "runs").exists()


def test_sweep_takes_overrides_too(tmp_path):
    out = str(tmp_path / "runs")
    result = invoke("sweep", "--methods", "ppo", "--protocols", "crl", "--preset", "quick",
                     "rho=0.5", "--out", out, "--dry-run")  # fmt: skip
    assert result.exit_code == 0, result.output
    cfg = build_config({"preset": "quick", "rho": 0.5, "method": "ppo", "protocol": "crl"})
    assert run_dir_name(cfg) in result.text
    bad = invoke("sweep", "--methods", "ppo", "rhoo=1", "--out", out, "--dry-run")
    assert bad.exit_code == 2 and "did you mean 'rho'" in bad.text


def test_training_prints_the_changed_keys_and_the_saved_config(tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({**TINY_RUN, "steps_per_task": 100}))
    result = invoke("train", "--config", str(config), "seed=3", "--out", str(tmp_path / "runs"),
                     "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    (line,) = [ln for ln in result.stdout.splitlines() if ln.startswith("config:")]
    assert line.startswith("config: preset quick; ")
    assert line.endswith(f"; all keys in {run_dir / 'config.json'}")
    saved = json.loads((run_dir / "config.json").read_text())
    defaults = {f.name: f.default for f in dataclasses.fields(ExperimentConfig)}
    changed = {k for k, v in saved.items() if k != "preset" and json.loads(json.dumps(
        defaults[k])) != v}  # fmt: skip
    for key in changed:
        assert f"{key}={json.dumps(saved[key])}" in line
    shown = {part.split("=")[0] for part in line.split("; ")[1].split(", ")}
    assert shown == changed and "seed" in shown
