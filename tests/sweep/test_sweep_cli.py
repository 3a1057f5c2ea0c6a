"""``sphere sweep`` argument handling (no Ray started)."""

import json

from sweep_setup import ONE_TASK
from typer.testing import CliRunner

from sphere_rl.cli.app import _register_all, app

_register_all()


def _invoke(*args: str):
    return CliRunner().invoke(app, ["sweep", *args], terminal_width=200)


def test_dry_run_prints_the_plan(tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps(ONE_TASK))
    result = _invoke("--methods", "ppo,sphere", "--seeds", "0-2", "--protocols", "crl,rl",
                     "--config", str(config), "--out", str(tmp_path / "runs"), "--dry-run")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "sweep: 12 runs" in result.output and "(12 new)" in result.output
    assert "custom-reach-v3-quick-rl-sphere-s2-" in result.output
    assert not (tmp_path / "runs").exists()


def test_benchmark_flag_and_invalid_grids(tmp_path):
    result = _invoke("--benchmark", "cw10,hb5", "--methods", "ppo", "--protocols", "crl",
                     "--preset", "quick", "--out", str(tmp_path), "--dry-run")  # fmt: skip
    assert result.exit_code == 0 and "cw10-quick-crl-ppo-s0-" in result.output
    assert "hb5-quick-crl-ppo-s0-" in result.output
    bad = _invoke("--benchmark", "cw10", "--methods", "ppo", "--seeds", "0-x", "--dry-run")
    assert bad.exit_code == 2 and "seeds" in bad.output
    bad = _invoke("--methods", "ppo", "--address", "auto", "--num-cpus", "2", "--dry-run")
    assert bad.exit_code == 2 and "--num-cpus" in bad.output
