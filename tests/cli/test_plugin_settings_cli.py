"""A plug-in's own setting from the command line: KEY=VALUE and --config, listed by ``sphere
methods``, a bad value is one line and exit 2, saved in config.json and compared on resume."""

import json
import sys

import pytest
from cli_helpers import TINY_RUN, invoke

PLUGIN = """
import sphere_rl


class Scaled:
    name, mode, pcgrad = "ux_scaled", "fixed", False

    def __init__(self, coef):
        self.coef = coef

    def penalty(self, output, obs, agent):
        return output.mean.square().mean()


sphere_rl.register_regularizer(
    "ux_scaled",
    lambda cfg: Scaled(cfg.plugin_setting("ux_scaled", "coef")),
    settings={"coef": sphere_rl.Setting(0.5, "its weight", check=lambda v: v >= 0, valid=">= 0")},
)
sphere_rl.register_method("ux_scaled_method", "mlp", "ux_scaled")
"""


@pytest.fixture
def plugin(tmp_path, isolated_registries):
    path = tmp_path / "ux_settings_plugin.py"
    path.write_text(PLUGIN)
    yield str(path)
    sys.modules.pop("ux_settings_plugin", None)


def test_methods_lists_the_setting_with_its_default(plugin):
    listed = invoke("methods", "--plugin", plugin)
    assert listed.exit_code == 0, listed.output
    assert "ux_scaled.coef=0.5: its weight" in listed.text  # the plug-in's row
    assert "ux_scaled.coef=0.5" in listed.text.split("ux_scaled_method", 1)[1]  # the method's


def test_a_setting_from_a_flag_or_a_config_file(plugin, tmp_path):
    out = str(tmp_path / "runs")
    given = invoke("train", "--plugin", plugin, "--method", "ux_scaled_method",
                   "ux_scaled.coef=0.25", "--out", out, "--dry-run")  # fmt: skip
    assert given.exit_code == 0, given.output
    assert json.loads(given.stdout)["ux_scaled.coef"] == 0.25
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"method": "ux_scaled_method", "ux_scaled.coef": 2}))
    from_file = invoke("train", "--plugin", plugin, "--config", str(config), "--out", out,
                       "--dry-run")  # fmt: skip
    assert from_file.exit_code == 0 and json.loads(from_file.stdout)["ux_scaled.coef"] == 2.0
    swept = invoke("sweep", "--plugin", plugin, "--methods", "ux_scaled_method", "--seeds", "0",
                   "--protocols", "crl", "--vary", "ux_scaled.coef=0.1,0.2", "--out", out,
                   "--dry-run")  # fmt: skip
    assert swept.exit_code == 0, swept.output
    assert "ux_scaled.coef=0.1" in swept.text and "ux_scaled.coef=0.2" in swept.text


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("ux_scaled.coef=-1", "ux_scaled.coef must be >= 0, got -1.0"),
        ("ux_scaled.coef=big", "ux_scaled.coef must be of type float, got 'big'"),
        ("ux_scaled.cof=1", "unknown plug-in setting 'ux_scaled.cof' (did you mean 'ux_scaled.coef'?)"),
    ],
)  # fmt: skip
def test_a_bad_setting_is_one_line_and_exit_2(plugin, tmp_path, assignment, message):
    result = invoke("train", "--plugin", plugin, "--method", "ux_scaled_method", assignment,
                    "--out", str(tmp_path / "runs"), "--dry-run")  # fmt: skip
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert f"error: invalid configuration: {message}" in result.text


def test_the_setting_is_saved_and_a_resume_may_not_change_it(plugin, tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({**TINY_RUN, "method": "ux_scaled_method"}))
    trained = invoke("train", "--plugin", plugin, "--config", str(config), "ux_scaled.coef=0.25",
                     "--out", str(tmp_path / "runs"), "--quiet")  # fmt: skip
    assert trained.exit_code == 0, trained.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "config.json").read_text())["ux_scaled.coef"] == 0.25
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    assert all("reg/ux_scaled" in r for r in records if r["kind"] == "train")

    changed = invoke("train", "--resume", str(run_dir), "ux_scaled.coef=0.3", "--quiet")
    assert changed.exit_code == 2 and changed.output.count("\n") == 1, changed.output
    assert "differing keys: ux_scaled.coef: 0.25 → 0.3" in changed.text

    status = json.loads((run_dir / "status.json").read_text())
    (run_dir / "status.json").write_text(json.dumps({**status, "state": "interrupted"}))
    resumed = invoke("train", "--resume", str(run_dir), "--quiet")  # the saved value, not 0.5
    assert resumed.exit_code == 0 and "finished:" in resumed.text, resumed.output
