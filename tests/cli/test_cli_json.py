"""``--json`` output of ``sphere eval`` and ``sphere entk`` on a real tiny run; narrow tables."""

import io
import json

import pytest
from rich.console import Console
from typer.testing import CliRunner

from sphere_rl.cli.app import _register_all, app
from sphere_rl.cli.output import name_table, print_json
from sphere_rl.config import build_config
from sphere_rl.continual.runner import ContinualRunner

_register_all()
TINY = {
    "benchmark": None, "tasks": "reach-v3,window-close-v3", "method": "topk_moe",
    "preset": "quick", "hidden": [16], "n_experts": 3, "num_envs": 2, "num_steps": 50,
    "minibatch_size": 50, "update_epochs": 1, "steps_per_task": 100, "checkpoint_interval": 100,
    "eval_interval": 10_000, "eval_episodes": 1, "diag_interval": 10_000, "diag_samples": 8,
}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("json") / "run"
    ContinualRunner.open(build_config(TINY), run_dir, show_progress=False).run()
    return run_dir


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_eval_json_is_the_only_stdout(tiny_run):
    result = _invoke("eval", tiny_run, "--episodes", "1", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)  # nothing but the document on stdout
    assert [t["task"] for t in document["tasks"]] == ["reach-v3", "window-close-v3"]
    for row in document["tasks"]:
        assert row["success"] in (0.0, 1.0) and isinstance(row["return"], float)
    mean = sum(t["success"] for t in document["tasks"]) / 2
    assert document["mean_success"] == pytest.approx(mean)
    assert document["checkpoint"] == "latest" and document["episodes"] == 1
    # The table shows the same numbers.
    table = _invoke("eval", tiny_run, "--episodes", "1")
    for row in document["tasks"]:
        assert f"{row['return']:.1f}" in table.stdout


def test_entk_json(tiny_run):
    result = _invoke("entk", tiny_run, "--samples", "8", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    pairs = [(r["checkpoint"], r["probe_task"]) for r in document["results"]]
    assert pairs == [(f"task_{i:03d}_end", t) for i in range(2)
                     for t in ("reach-v3", "window-close-v3")]  # fmt: skip
    # r_e of a kernel on 8 states × 4 action dims lies in [1, 32]; the proxy in [1, E·d].
    assert all(
        1.0 <= r["entk_rank"] <= 32.0 and r["proxy_rank"] >= 1.0 for r in document["results"]
    )
    bad = _invoke("entk", tiny_run, "--task", "push-v3", "--json")
    assert bad.exit_code == 2 and bad.stdout == ""


def test_print_json_is_strict(capsys):
    print_json({"a": float("nan"), "b": [1.5, float("inf")], "c": (1, 2)})
    assert json.loads(capsys.readouterr().out) == {"a": None, "b": [1.5, None], "c": [1, 2]}


def test_names_stay_on_one_line_in_a_narrow_terminal():
    names = ["cw10-crl-topk_moe_ln-s12", "hb5-rl-sphere-s0"]
    table = name_table("sweep summary", "run", ["action", "result", "note"])
    for name in names:
        table.add_row(name, "resume", "finished", "interrupted at step 1,234,567 of 10,000,000")
    stream = io.StringIO()
    Console(file=stream, width=60).print(table)
    lines = stream.getvalue().splitlines()
    for name in names:
        assert sum(name in line for line in lines) == 1
    assert max(len(line) for line in lines) <= 60
