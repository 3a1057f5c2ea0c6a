"""Faults of where files go, not of the code: a full disk, a read-only run directory, another
sweep's run. Each ends with one line (exit 1 for the machine's side, 2 for the user's), loses
nothing, and the same command continues once the cause is gone."""

import errno
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from cli_helpers import TINY_RUN, snapshot
from typer.testing import CliRunner

import sphere_rl.analysis.report
import sphere_rl.cli.train
import sphere_rl.continual.runner
import sphere_rl.continual.video
import sphere_rl.sweep.ray_runner as ray_runner
from sphere_rl.cli.app import _register_all, app
from sphere_rl.config import build_config
from sphere_rl.continual.rundir import read_jsonl
from sphere_rl.continual.runner import ContinualRunner

_register_all()


def _invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def _flat(text: str) -> str:
    return " ".join(text.split())


def _full_disk(path) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def _one_line_exit(result, code: int) -> str:
    """The command ended through ``fail`` (no exception escaped) with one ``error:`` line."""
    assert result.exit_code == code and isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output and 'File "' not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    return _flat(result.output)


def _train_steps(run: Path) -> list[int]:
    return [r["global_step"] for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "train"]


def test_a_full_disk_during_training_stops_with_one_line_and_the_run_resumes(tmp_path, monkeypatch):
    config = tmp_path / "c.json"
    config.write_text(json.dumps(TINY_RUN))
    command = ["train", "--config", config, "--out", tmp_path / "runs", "--quiet"]
    save, calls = sphere_rl.continual.runner.save_checkpoint, []

    def checkpoint_at_200_fills_the_disk(path, payload):
        if payload["state"]["global_step"] == 200:
            calls.append(path)
            raise _full_disk(path)
        save(path, payload)

    monkeypatch.setattr(
        sphere_rl.continual.runner, "save_checkpoint", checkpoint_at_200_fills_the_disk
    )
    output = _one_line_exit(_invoke(*command), 1)
    assert f"No space left on device writing {calls[0]}; free some space" in output
    (run,) = (tmp_path / "runs").iterdir()
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "running" and status["global_step"] == 100  # resumable, not failed

    monkeypatch.setattr(sphere_rl.continual.runner, "save_checkpoint", save)  # space freed
    again = _invoke(*command)
    assert again.exit_code == 0, again.output
    assert json.loads((run / "status.json").read_text())["state"] == "finished"
    assert _train_steps(run) == [100, 200]  # continued from the checkpoint, nothing twice


def test_a_full_disk_while_writing_a_report_stops_with_one_line(
    finished_run, tmp_path, monkeypatch
):
    write = sphere_rl.analysis.report.atomic_write_bytes

    def html_fills_the_disk(path, data):
        if Path(path).name == "index.html":
            raise _full_disk(path)
        write(path, data)

    monkeypatch.setattr(sphere_rl.analysis.report, "atomic_write_bytes", html_fills_the_disk)
    command = ["report", finished_run.parent, "--out", tmp_path / "report", "--reps", "20",
               "--formats", "png"]  # fmt: skip
    output = _one_line_exit(_invoke(*command), 1)
    assert "No space left on device writing" in output and "index.html" in output
    monkeypatch.setattr(sphere_rl.analysis.report, "atomic_write_bytes", write)
    assert _invoke(*command).exit_code == 0
    assert (tmp_path / "report/index.html").is_file()


def test_a_full_disk_while_saving_a_video_stops_with_one_line(finished_run, tmp_path, monkeypatch):
    def video_fills_the_disk(agent, task, path, seed, **options):
        raise _full_disk(path)

    monkeypatch.setattr(sphere_rl.continual.video, "record_video", video_fills_the_disk)
    result = _invoke("eval", finished_run, "--episodes", "1", "--video", tmp_path / "v")
    output = _one_line_exit(result, 1)
    assert f"No space left on device writing {tmp_path / 'v'}" in output


def test_a_read_only_run_directory_on_resume_is_one_line_and_resumes_later(interrupted_run,
                                                                            monkeypatch):  # fmt: skip
    lock = sphere_rl.cli.train.run_lock

    def read_only(run_dir, *args, **kwargs):  # open(".lock", "a+") on a read-only file system
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(Path(run_dir) / ".lock"))

    before = snapshot(interrupted_run)
    monkeypatch.setattr(sphere_rl.cli.train, "run_lock", read_only)
    output = _one_line_exit(_invoke("train", "--resume", interrupted_run, "--quiet"), 2)
    assert f"Read-only file system writing {interrupted_run / '.lock'}; make it writable" in output
    assert snapshot(interrupted_run) == before
    monkeypatch.setattr(sphere_rl.cli.train, "run_lock", lock)  # mounted read-write again
    assert _invoke("train", "--resume", interrupted_run, "--quiet").exit_code == 0
    assert json.loads((interrupted_run / "status.json").read_text())["state"] == "finished"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_run_directory_is_refused_before_resuming(interrupted_run):
    before = snapshot(interrupted_run)
    interrupted_run.chmod(0o555)
    try:
        output = _one_line_exit(_invoke("train", "--resume", interrupted_run, "--quiet"), 2)
    finally:
        interrupted_run.chmod(0o755)
    assert "the run directory is read-only" in output
    assert snapshot(interrupted_run) == before


def test_the_losing_sweep_over_another_sweeps_run_is_refused_in_one_line(tmp_path, monkeypatch):
    """Two sweeps with different configurations over one --out: the one that planned the run as
    new before the other created it is refused by the runner, in one line (it printed a six-line
    traceback tail)."""
    ppo = {**TINY_RUN, "method": "ppo", "protocol": "crl"}
    config = tmp_path / "c.json"
    config.write_text(json.dumps({**ppo, "steps_per_task": 100}))

    def other_sweep_wins(plans, options, on_done, **kwargs):  # Ray, run in-process
        outcomes = []
        for plan in plans:
            ContinualRunner.open(build_config(ppo), plan.run_dir, show_progress=False)
            result = ray_runner.train_run(plan.cfg.to_dict(), str(plan.run_dir), threads=1)
            outcomes.append(ray_runner._collect(SimpleNamespace(get=lambda ref: ref), result, plan))
            on_done(outcomes[-1])
        return outcomes

    monkeypatch.setattr(ray_runner, "run_sweep", other_sweep_wins)
    result = _invoke("sweep", "--methods", "ppo", "--protocols", "crl", "--config", config,
                     "--out", tmp_path / "runs")  # fmt: skip
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert (
        "Traceback" not in result.output
        and 'File "' not in result.output
        and "raise ResumeError" not in result.output
    )
    assert "was started with a different configuration" in _flat(result.output)
    (summary,) = json.loads((tmp_path / "runs/sweep_summary.json").read_text())
    assert summary["result"] == "failed" and summary["traceback"] is None
    assert summary["error"].startswith("ResumeError")
