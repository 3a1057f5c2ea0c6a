"""A user's mistakes against the CLI: each ends with exit code 2, one specific message, and nothing
on disk created, deleted or changed (``snapshot`` before and after)."""

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from cli_helpers import snapshot
from typer.testing import CliRunner

from sphere_rl.cli.app import _register_all, app
from sphere_rl.continual.rundir import run_lock

_register_all()
NEW = ["--tasks", "reach-v3", "--preset", "quick", "--quiet"]  # a valid new run but for the case


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def _flat(text: str) -> str:
    """Output with line wrapping undone (rich wraps at the terminal width)."""
    return " ".join(text.split())


def _write(name: str, text: str) -> Callable[[Path], None]:
    return lambda tmp: (tmp / name).write_text(text)


@dataclass
class Case:
    args: list[str]  # "{tmp}" is replaced by the test's directory
    messages: list[str]
    setup: Callable[[Path], None] = field(default=lambda tmp: None)


CONFIG = ["--config", "{tmp}/c.json"]
OUT = ["--out", "{tmp}/runs"]
CASES = {
    # Names, all checked before anything is created, each with the closest valid name.
    "unknown-method": Case(["train", "--method", "sphre", *NEW, *OUT],
                           ["unknown method 'sphre' (did you mean 'sphere'?)"]),
    "unknown-arch": Case(["train", "--arch", "topk_mo", *NEW, *OUT],
                         ["unknown arch 'topk_mo' (did you mean 'topk_moe'?)"]),
    "unknown-reg": Case(["train", "--reg", "sphre", *NEW, *OUT],
                        ["unknown reg 'sphre' (did you mean 'sphere'?)"]),
    "unknown-task": Case(["train", "--tasks", "hamer-v3", "--quiet", *OUT],
                         ["unknown task 'hamer-v3' (did you mean 'hammer-v3'?)"]),
    "unknown-benchmark": Case(["train", "--benchmark", "cw11", "--quiet", *OUT],
                              ["unknown benchmark 'cw11' (did you mean 'cw10'?)"]),
    "every-problem-at-once": Case(
        ["train", "--tasks", "hamer-v3", "--method", "sphre", "--num-envs", "0", "--quiet", *OUT],
        ["unknown task 'hamer-v3'", "unknown method 'sphre'", "num_envs must be > 0, got 0"]),
    "unknown-preset": Case(["train", "--preset", "fast", "--tasks", "reach-v3", *OUT],
                           ["preset must be one of ['cw10', 'cw20', 'hb5', 'quick'], got 'fast'"]),
    "bad-protocol": Case(["train", "--protocol", "both", *NEW, *OUT],
                         ["protocol must be one of ('crl', 'rl'), got 'both'"]),
    "bad-sphere-mode": Case(["train", "--sphere-mode", "auto", *NEW, *OUT],
                            ["sphere_mode must be one of ('fixed', 'loss', 'grad'), got 'auto'"]),
    "bad-env-backend": Case(["train", "--env-backend", "mujoco", *NEW, *OUT],
                            ["env_backend must be one of"]),
    "zero-envs": Case(["train", "--num-envs", "0", *NEW, *OUT], ["num_envs must be > 0, got 0"]),
    "negative-seed": Case(["train", "--seed", "-1", *NEW, *OUT], ["seed must be >= 0, got -1"]),
    "steps-below-one-rollout": Case(["train", "--steps-per-task", "10", *NEW, *OUT],
                                    ["steps_per_task (10) is smaller than one rollout"]),
    "crl-tasks-of-two-sizes": Case(["train", "--tasks", "reach-v3,h1-stand", "--preset", "quick",
                                    "--quiet", *OUT],
                                   ["every task needs the same observation and action sizes"]),
    # A task list's preset is its tasks' (MetaWorld: cw10, H1: hb5); tasks of both need one given.
    "tasks-of-two-presets": Case(["train", "--tasks", "reach-v3,h1-stand", "--quiet", *OUT],
                                 ["invalid configuration: the tasks need different presets"
                                  " (reach-v3 -> cw10; h1-stand -> hb5) and none is given; give"
                                  " one of cw10, cw20, hb5, quick as preset (--preset)"]),
    "methods-unknown-preset": Case(["methods", "--preset", "fast"],
                                   ["--preset must be one of cw10, cw20, hb5, quick, got 'fast'"]),
    # Non-finite floats, from flags and from --config.
    "rho-infinity": Case(["train", "--rho", "inf", *NEW, *OUT],
                         ["rho must be a finite number, got inf"]),
    "rho-nan": Case(["train", "--rho", "nan", *NEW, *OUT], ["rho must be a finite number, got nan"]),
    "rho-minus-infinity": Case(["train", "--rho", "-inf", *NEW, *OUT],
                               ["rho must be a finite number, got -inf"]),
    "config-lr-infinity": Case(["train", *CONFIG, *NEW, *OUT],
                               ["lr must be a finite number, got inf"],
                               _write("c.json", '{"lr": Infinity}')),
    "config-gamma-nan": Case(["train", *CONFIG, *NEW, *OUT], ["gamma must be a finite number"],
                             _write("c.json", '{"gamma": NaN}')),
    "config-temperature-inf": Case(["train", *CONFIG, *NEW, *OUT],
                                   ["temperature must be a finite number"],
                                   _write("c.json", '{"temperature": 1e999}')),
    # Flags that contradict each other.
    "benchmark-and-tasks": Case(["train", "--benchmark", "cw10", "--tasks", "reach-v3", *OUT],
                                ["give --benchmark or --tasks, not both"]),
    # --config files that are not a configuration.
    "config-list": Case(["train", *CONFIG, *NEW, *OUT],
                        ["c.json must hold a JSON object of configuration keys", "got a list"],
                        _write("c.json", '["rho", 0.1]')),
    "config-string": Case(["train", *CONFIG, *NEW, *OUT], ["got a string"],
                          _write("c.json", '"rho=0.1"')),
    "config-truncated": Case(["train", *CONFIG, *NEW, *OUT], ["c.json is not valid JSON"],
                             _write("c.json", '{"rho": 0.')),
    "config-missing": Case(["train", *CONFIG, *NEW, *OUT],
                           ["cannot read --config", "No such file or directory"]),
    "config-is-a-directory": Case(["train", "--config", "{tmp}", *NEW, *OUT],
                                  ["cannot read --config", "Is a directory"]),
    "config-unknown-key": Case(["train", *CONFIG, *NEW, *OUT],
                               ["unknown key 'ent_coeff' (did you mean 'ent_coef'?)"],
                               _write("c.json", '{"ent_coeff": 0.01}')),
    "config-wrong-type": Case(["train", *CONFIG, *NEW, *OUT], ["hidden must be of type"],
                              _write("c.json", '{"hidden": "wide"}')),
    # Where the run would go, and what it would run on.
    "bad-device": Case(["train", "--device", "tpu", *NEW, *OUT],
                       ["device must be 'cpu' or 'cuda[:N]', got 'tpu'"]),
    "out-is-a-file": Case(["train", *NEW, "--out", "{tmp}/runs"], ["runs is a file"],
                          _write("runs", "not a directory")),
    "out-below-a-file": Case(["train", *NEW, "--out", "{tmp}/runs/sub"],
                             ["cannot be created", "runs is a file"],
                             _write("runs", "not a directory")),
    # --resume of something that is not a run: never a new run there.
    "resume-missing-dir-with-flags": Case(
        ["train", "--resume", "{tmp}/mistyped", "--tasks", "reach-v3", "--quiet"],
        ["--resume", "mistyped: not a run directory (no config.json)"]),
    "resume-empty-dir": Case(["train", "--resume", "{tmp}", "--quiet"],
                             ["not a run directory (no config.json)"]),
    # Sweeps validate every grid point before planning.
    "sweep-method-typo": Case(["sweep", "--methods", "sphere,sphre", "--tasks", "reach-v3",
                               "--preset", "quick", *OUT, "--dry-run"],
                              ["unknown method 'sphre' (did you mean 'sphere'?)"]),
    "sweep-protocol-and-task": Case(
        ["sweep", "--methods", "ppo", "--protocols", "crl,both", "--tasks", "hamer-v3",
         "--preset", "quick", *OUT, "--dry-run"],
        ["unknown task 'hamer-v3'", "protocol must be one of ('crl', 'rl'), got 'both'"]),
    "sweep-config-list": Case(["sweep", "--methods", "ppo", *CONFIG, *OUT, "--dry-run"],
                              ["must hold a JSON object"], _write("c.json", "[1, 2]")),
    "sweep-benchmark-and-tasks": Case(
        ["sweep", "--methods", "ppo", "--benchmark", "cw10", "--tasks", "reach-v3", *OUT],
        ["give --benchmark or --tasks, not both"]),
    "sweep-rho-infinity": Case(["sweep", "--methods", "sphere", "--tasks", "reach-v3", *CONFIG,
                                *OUT, "--dry-run"],
                               ["rho must be a finite number"], _write("c.json", '{"rho": 1e400}')),
    "sweep-out-is-a-file": Case(["sweep", "--methods", "ppo", "--tasks", "reach-v3", "--out",
                                 "{tmp}/runs", "--dry-run"],
                                ["runs is a file"], _write("runs", "")),
    "sweep-plugin-named-like-a-module": Case(
        ["sweep", "--methods", "ppo", "--tasks", "reach-v3", "--plugin", "{tmp}/json.py", *OUT,
         "--dry-run"],
        ["json.py has the name of the module 'json'", "rename the file (e.g. json_plugin.py)"],
        _write("json.py", "X = 1\n")),
    "sweep-vary-unbalanced-list": Case(
        ["sweep", "--methods", "ppo", "--tasks", "reach-v3", "--vary", "hidden=[8,8],[16", *OUT,
         "--dry-run"], ["unbalanced brackets; write list values like hidden=[8,8],[16]"]),
    # Paths the file system cannot hold (a name over NAME_MAX, a path near PATH_MAX).
    "out-name-too-long": Case(["train", *NEW, "--out", "{tmp}/" + "x" * 300],
                              ["is 300 bytes long; this file system allows at most 255 bytes"]),
    "out-path-too-long": Case(["train", *NEW, "--out", "{tmp}" + "/d" * 2000],
                              ["run directories need it shorter than", "(PATH_MAX 4096)"]),
    "sweep-out-name-too-long": Case(["sweep", "--methods", "ppo", "--tasks", "reach-v3",
                                     "--out", "{tmp}/" + "x" * 300, "--dry-run"],
                                    ["is 300 bytes long"]),
    # Reading runs back.
    "eval-not-a-run": Case(["eval", "{tmp}/nothing"], ["no checkpoint 'latest.pt'"]),
    "report-no-runs": Case(["report", "{tmp}", "--out", "{tmp}/report"],
                           ["no run directories (with a config.json) under"]),
    "report-zero-reps": Case(["report", "{tmp}", "--reps", "0", "--out", "{tmp}/report"],
                             ["--reps must be >= 1 (bootstrap resamples per interval), got 0"]),
}  # fmt: skip
if not torch.cuda.is_available():
    CASES["device-cuda-without-cuda"] = Case(
        ["train", "--device", "cuda", *NEW, *OUT],
        ["--device cuda: no CUDA (torch.cuda.is_available() is False)", "use --device cpu"],
    )
if os.geteuid() != 0:  # root may write anywhere
    CASES["out-not-writable"] = Case(
        ["train", *NEW, "--out", "{tmp}/locked/runs"],
        ["no permission to write in"],
        lambda tmp: (tmp / "locked").mkdir(mode=0o500),
    )


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_mistake_exits_2_with_a_message_and_changes_nothing(case, tmp_path):
    case.setup(tmp_path)
    before = snapshot(tmp_path)
    result = _invoke(*(a.replace("{tmp}", str(tmp_path)) for a in case.args))
    output = _flat(result.output)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "error:" in output
    for message in case.messages:
        assert _flat(message) in output, result.output
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------ mistakes against a real run
def _status(run: Path) -> dict:
    return json.loads((run / "status.json").read_text())


def test_resume_with_a_changed_key_names_only_that_key(finished_run):
    before = snapshot(finished_run)
    result = _invoke("train", "--resume", str(finished_run), "--seed", "3", "--quiet")
    assert result.exit_code == 2
    assert "differing keys: seed: 0 → 3." in _flat(result.output)
    assert snapshot(finished_run) == before


def test_resume_with_the_same_values_is_accepted(finished_run):
    before = snapshot(finished_run)
    result = _invoke("train", "--resume", str(finished_run), "--seed", "0", "--tasks", "reach-v3",
                     "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "already finished" in _flat(result.output)
    assert snapshot(finished_run) == before


def test_resume_with_a_damaged_config(finished_run):
    (finished_run / "config.json").write_text('{"seed": ')
    before = snapshot(finished_run)
    result = _invoke("train", "--resume", str(finished_run), "--quiet")
    assert result.exit_code == 2
    assert "config.json: cannot read it as JSON" in _flat(result.output)
    assert snapshot(finished_run) == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_resume_of_a_cuda_run_on_a_cpu_machine_says_how_to_continue(interrupted_run):
    config = json.loads((interrupted_run / "config.json").read_text())
    (interrupted_run / "config.json").write_text(json.dumps({**config, "device": "cuda"}))
    before = snapshot(interrupted_run)
    result = _invoke("train", "--resume", str(interrupted_run), "--quiet")
    assert result.exit_code == 2
    output = _flat(result.output)
    assert "trains on device 'cuda'" in output
    assert f"continue on CPU with --resume {interrupted_run} --device cpu" in output
    assert snapshot(interrupted_run) == before


def test_a_second_process_on_a_run_is_refused_naming_the_holder(interrupted_run):
    before = snapshot(interrupted_run)
    with run_lock(interrupted_run):  # a separate open file: flock treats it as another holder
        result = _invoke("train", "--resume", str(interrupted_run), "--quiet")
    assert result.exit_code == 2
    assert f"being trained by another process (PID {os.getpid()})" in _flat(result.output)
    assert snapshot(interrupted_run) == before


def test_resume_without_the_checkpoint_refuses_instead_of_restarting(interrupted_run):
    (interrupted_run / "checkpoints/latest.pt").unlink()
    metrics = (interrupted_run / "metrics.jsonl").read_bytes()
    result = _invoke("train", "--resume", str(interrupted_run), "--quiet")
    assert result.exit_code == 2
    assert "latest.pt is missing but metrics.jsonl holds" in _flat(result.output)
    assert (interrupted_run / "metrics.jsonl").read_bytes() == metrics  # no duplicates appended
    assert _status(interrupted_run)["state"] == "failed"
    assert _status(interrupted_run)["global_step"] == 200  # the position is kept


def test_resume_with_metrics_cut_mid_line_keeps_every_file_intact(interrupted_run):
    metrics = interrupted_run / "metrics.jsonl"
    text = metrics.read_text()
    metrics.write_text(text[: len(text.splitlines()[0]) + 40])  # mid-way through record 2
    eval_csv = (interrupted_run / "eval.csv").read_bytes()
    cut = metrics.read_bytes()
    result = _invoke("train", "--resume", str(interrupted_run), "--quiet")
    assert result.exit_code == 2
    assert "metrics.jsonl does not reach the checkpoint's step 200" in _flat(result.output)
    assert (interrupted_run / "eval.csv").read_bytes() == eval_csv
    assert metrics.read_bytes() == cut
    assert _status(interrupted_run)["state"] == "failed"


def test_resume_with_a_truncated_checkpoint_names_the_file(interrupted_run):
    latest = interrupted_run / "checkpoints/latest.pt"
    latest.write_bytes(latest.read_bytes()[:1000])
    result = _invoke("train", "--resume", str(interrupted_run), "--quiet")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{latest} is damaged (truncated or not a checkpoint)" in _flat(result.output)
    status = _status(interrupted_run)
    assert status["state"] == "failed" and "latest.pt is damaged" in status["error"]


@pytest.mark.parametrize("command", ["eval", "entk"])
def test_eval_and_entk_on_a_truncated_checkpoint(finished_run, command):
    latest = finished_run / "checkpoints/task_000_end.pt"
    latest.write_bytes(latest.read_bytes()[:500])
    before = snapshot(finished_run)
    result = _invoke(command, str(finished_run), "--checkpoint", "task_000_end")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "task_000_end.pt is damaged (truncated or not a checkpoint)" in _flat(result.output)
    assert snapshot(finished_run) == before


def test_report_with_zero_resamples_is_refused_before_anything_is_written(finished_run, tmp_path):
    before = snapshot(tmp_path)
    result = _invoke("report", str(finished_run.parent), "--out", str(tmp_path / "report"),
                     "--reps", "0")  # fmt: skip
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert "--reps must be >= 1" in _flat(result.output)
    assert snapshot(tmp_path) == before


def test_report_lists_an_unreadable_run_and_reports_the_others(finished_run, tmp_path):
    broken = finished_run.parent / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"method": "sph')
    result = _invoke("report", str(finished_run.parent), "--out", str(tmp_path / "report"),
                     "--reps", "50")  # fmt: skip
    assert result.exit_code == 0, result.output
    output = _flat(result.output)
    assert "unreadable run left out:" in output and "broken/config.json: cannot read it" in output
    assert (tmp_path / "report/index.html").is_file()
