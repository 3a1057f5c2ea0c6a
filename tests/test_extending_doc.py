"""``docs/extending.md`` runs as written: its code blocks are extracted and executed."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).parents[1] / "docs" / "extending.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_extending_example_runs(tmp_path):
    plugin, example = _blocks("python")
    assert plugin.startswith("# my_plugin.py")
    (tmp_path / "my_plugin.py").write_text(plugin)
    (tmp_path / "example.py").write_text(example)
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    result = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "state: finished env steps: 800" in result.stdout
    assert "log-std resets: [1]" in result.stdout  # one new task after the first
    assert "feature_decay.coef in config.json: 0.002" in result.stdout
    run_dir = tmp_path / "runs" / "extending-example"
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    train = [r for r in records if r["kind"] == "train"]
    assert len(train) == 4 and all(r["reg/feature_decay"] > 0 for r in train)
    assert json.loads((run_dir / "run.json").read_text())["regularizers"] == [
        "feature_decay", "reset_log_std"
    ]  # fmt: skip


def test_the_documented_commands_resolve(tmp_path):
    """Each command of the bash block, as a dry run."""
    (tmp_path / "my_plugin.py").write_text(_blocks("python")[0])
    (bash,) = _blocks("bash")
    lines = bash.replace("\\\n", " ").splitlines()
    commands = [shlex.split(line.split("#")[0]) for line in lines if line.startswith("sphere ")]
    assert [argv[1] for argv in commands] == ["methods", "train", "train", "sweep"]
    for argv in commands:
        extra = [] if argv[1] == "methods" else ["--dry-run"]
        result = subprocess.run(
            [sys.executable, "-m", "sphere_rl.cli.app", *argv[1:], *extra],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, (argv, result.stdout + result.stderr)
        if argv[1] == "methods":
            assert "topk_moe_decay" in result.stdout and "reset_log_std" in result.stdout
        if "feature_decay.coef=1e-2" in argv:  # the plug-in's setting, in the resolved config
            assert json.loads(result.stdout)["feature_decay.coef"] == 0.01
        if argv[1] == "sweep":
            assert "cw10-crl-topk_moe_decay-s2" in result.stdout
    assert not (tmp_path / "runs").exists()
