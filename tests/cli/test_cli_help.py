"""``sphere ... --help``: generated from the registries, readable at any width; ``--dry-run``."""

import json
import os
import re
import subprocess
import sys

import pytest
import typer.main
from typer.testing import CliRunner

from sphere_rl.cli.app import _register_all, app
from sphere_rl.config import CHOICES, PRESETS, build_config
from sphere_rl.methods import ARCHS, COMPONENTS, METHODS

_register_all()
BOX = re.compile(r"[│╭╮╰╯─┌┐└┘├┤┬┴┼]")


def _help(command: str, columns: int) -> list[str]:
    """Help of ``sphere <command>`` as a user's terminal shows it, box characters removed."""
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "dumb", "NO_COLOR": "1"}
    env.pop("FORCE_COLOR", None)
    result = subprocess.run(
        [sys.executable, "-m", "sphere_rl.cli.app", command, "--help"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns
    return [BOX.sub(" ", line) for line in lines]


def _option_help(command: str) -> dict[str, str]:
    """The help text of each option of ``sphere <command>``, as the command declares it."""
    params = typer.main.get_command(app).commands[command].params
    return {p.name: p.help for p in params if p.param_type_name == "option" and p.help}


def _words(text: str) -> set[str]:
    return {w.strip(".,;:()'") for w in text.split()} - {""}


@pytest.mark.parametrize("columns", [80, 200])
def test_train_help_lists_the_registries_and_breaks_no_word(columns):
    lines = _help("train", columns)
    text = "\n".join(lines)
    on_a_line = set().union(*(_words(line) for line in lines))
    # Every word of every help string appears whole on one line: nothing is cut mid-word.
    help_texts = _option_help("train")
    assert {"benchmark", "rho", "preset", "plugin", "dry_run"} <= set(help_texts)
    for key, help_text in help_texts.items():
        broken = _words(help_text) - on_a_line
        assert not broken, f"--{key} help words broken or missing: {broken}"
    names = [*METHODS, *ARCHS, *COMPONENTS, *CHOICES["env_backend"], *PRESETS]
    assert set(names) <= on_a_line
    assert "auto" in on_a_line and "sphere+cbp" in on_a_line
    assert "``" not in text and "[default: None]" not in text
    for shown in ("[default: (sphere)]", "[default: (crl)]", "[default: (metaworld)]"):
        assert shown in " ".join(text.split())  # a default may wrap at a space
    assert "--dry-run" in text and "--plugin" in text


@pytest.mark.parametrize("command", ["eval", "entk", "report", "sweep", "methods"])
def test_other_help_has_no_raw_markup(command):
    text = "\n".join(_help(command, 80))
    assert "``" not in text
    if command in ("eval", "entk", "report"):
        assert "--json" in text


def _invoke(*args: str):
    result = CliRunner().invoke(app, list(args), terminal_width=200)
    result.text = " ".join(result.output.split())  # messages may wrap at the console's width
    return result


def test_dry_run_prints_a_reusable_configuration_and_creates_nothing(tmp_path):
    out = tmp_path / "runs"
    result = CliRunner().invoke(
        app, ["train", "--benchmark", "hb5", "--method", "topk_moe", "--seed", "3",
              "--rho", "0.01", "--out", str(out), "--dry-run"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert not out.exists() and not list(tmp_path.iterdir())
    printed = json.loads(result.stdout)
    expected = build_config({"benchmark": "hb5", "method": "topk_moe", "seed": 3, "rho": 0.01})
    assert printed == expected.to_dict()
    assert printed["steps_per_task"] == 10_000_000 and printed["num_envs"] == 128
    assert "hb5-crl-topk_moe-s3" in result.stderr and "5 task(s)" in result.stderr
    # The printed configuration is a valid --config: the same run.
    (tmp_path / "c.json").write_text(result.stdout)
    again = CliRunner().invoke(app, ["train", "--config", str(tmp_path / "c.json"), "--out",
                                     str(out), "--dry-run"])  # fmt: skip
    assert again.exit_code == 0 and json.loads(again.stdout) == printed


def test_dry_run_reports_mistakes_with_exit_2(tmp_path):
    bad = _invoke("train", "--method", "nope", "--dry-run", "--out", str(tmp_path))
    assert bad.exit_code == 2 and "unknown method 'nope'" in bad.text
    bad = _invoke("train", "--steps-per-task", "-5", "--dry-run", "--out", str(tmp_path))
    assert bad.exit_code == 2 and "steps_per_task must be > 0" in bad.text
    bad = _invoke("train", "--resume", str(tmp_path), "--dry-run")
    assert bad.exit_code == 2 and "not a run directory" in bad.text
    assert "Traceback" not in bad.output and not list(tmp_path.iterdir())


def test_plugin_flag(tmp_path, monkeypatch):
    from sphere_rl import methods

    monkeypatch.setattr(methods, "METHODS", dict(methods.METHODS))
    missing = _invoke("train", "--plugin", "ux_no_such_plugin", "--dry-run")
    assert missing.exit_code == 2 and "plug-in 'ux_no_such_plugin' not found" in missing.text
    assert missing.text.startswith("error:") and missing.text.count("error:") == 1
    plugin = tmp_path / "ux_cli_plugin.py"
    plugin.write_text("import sphere_rl\nsphere_rl.register_method('cli_mine', 'ds_moe', 'cbp')\n")
    result = _invoke("train", "--plugin", str(plugin), "--method", "cli_mine", "--dry-run",
                     "--out", str(tmp_path / "runs"))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "cli_mine = ds_moe + cbp" in result.stderr
    listed = _invoke("methods", "--plugin", str(plugin))
    assert listed.exit_code == 0 and "cli_mine" in listed.stdout
    sys.modules.pop("ux_cli_plugin", None)
