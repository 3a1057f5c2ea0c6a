"""``--vary``: extra grid axes over configuration keys (a ρ sweep), each in its own sub-folder."""

import json

import pytest
from sweep_setup import ONE_TASK
from typer.testing import CliRunner

from sphere_rl.cli.app import _register_all, app
from sphere_rl.config import ConfigError
from sphere_rl.sweep import SweepGrid, expand_grid, parse_variation, plan_runs


def test_parse_variation_reads_json_values_and_keeps_words():
    assert parse_variation("rho=1e-3, 1e-2,1e-3") == ("rho", [0.001, 0.01])
    assert parse_variation("sphere_mode=grad,loss") == ("sphere_mode", ["grad", "loss"])
    assert parse_variation("pcgrad=true") == ("pcgrad", [True])
    for bad in ("rho", "=1", "rho=", "rho= , "):
        with pytest.raises(ConfigError, match="KEY=VALUE"):
            parse_variation(bad)


def test_list_values_are_split_outside_brackets_and_get_compact_folders(tmp_path):
    # It used to split inside the brackets, then fail with TypeError (a list is unhashable).
    assert parse_variation("hidden=[8,8],[16], [8, 8]") == ("hidden", [[8, 8], [16]])
    with pytest.raises(ConfigError, match="unbalanced brackets"):
        parse_variation("hidden=[8,8],16]")
    grid = SweepGrid(["ppo"], [0], ["crl"], base=ONE_TASK, variations={"hidden": [[8, 8], [16]]})
    plans = plan_runs(expand_grid(grid), tmp_path, vary=["hidden"])
    assert [list(p.cfg.hidden) for p in plans] == [[8, 8], [16]]
    assert [p.run_dir.parent.name for p in plans] == ["hidden=[8,8]", "hidden=[16]"]


def test_variations_multiply_the_grid_and_get_their_own_folders(tmp_path):
    grid = SweepGrid(["sphere"], [0, 1], ["crl"], base=ONE_TASK,
                     variations={"rho": [1e-3, 1e-1], "sphere_mode": ["grad", "loss"]})  # fmt: skip
    configs = expand_grid(grid)
    assert len(configs) == grid.size == 8
    combos = {(c.rho, c.sphere_mode, c.seed) for c in configs}
    assert combos == {(r, m, s) for r in (1e-3, 1e-1) for m in ("grad", "loss") for s in (0, 1)}
    plans = plan_runs(configs, tmp_path, vary=["rho", "sphere_mode"])
    assert len({p.run_dir for p in plans}) == 8 and all(p.action == "new" for p in plans)
    plan = next(p for p in plans if (p.cfg.rho, p.cfg.sphere_mode, p.cfg.seed) == (0.1, "loss", 1))
    assert plan.run_dir.parent == (tmp_path / "rho=0.1,sphere_mode=loss").absolute()
    assert plan.name == f"rho=0.1,sphere_mode=loss/{plan.run_dir.name}"


def test_invalid_variation_values_are_reported_with_the_grid():
    grid = SweepGrid(["sphere"], [0], ["crl"], base=ONE_TASK,
                     variations={"rho": [-1.0], "sphere_mode": ["sideways"]})  # fmt: skip
    with pytest.raises(ConfigError) as err:
        expand_grid(grid)
    assert "rho must be >= 0" in str(err.value) and "sphere_mode must be one of" in str(err.value)


def test_vary_on_the_command_line(tmp_path):
    _register_all()
    config = tmp_path / "c.json"
    config.write_text(json.dumps(ONE_TASK))
    args = ["sweep", "--methods", "sphere", "--protocols", "crl", "--config", str(config),
            "--out", str(tmp_path / "runs"), "--vary", "rho=1e-3,1e-2", "--dry-run"]  # fmt: skip
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "sweep: 2 runs" in result.output and "rho=0.01/custom-reach-v3" in result.output
    bad = CliRunner().invoke(app, [*args[:-3], "--vary", "rho", "--dry-run"])
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.output
