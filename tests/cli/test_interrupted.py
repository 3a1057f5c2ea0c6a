"""A run stopped by SIGINT or SIGTERM says so in status.json (``interrupted``, with the signal),
``sphere report`` shows it, and ``--resume`` continues it."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import TINY_RUN
from typer.testing import CliRunner

import sphere_rl.continual.runner as runner_module
from sphere_rl.cli.app import _register_all, app
from sphere_rl.config import build_config
from sphere_rl.continual.rundir import read_jsonl
from sphere_rl.continual.runner import ContinualRunner, RunInterrupted
from sphere_rl.continual.tensorboard import TensorBoardLog

_register_all()
SRC = str(Path(__file__).resolve().parents[2] / "src")


def _status(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def _start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env["PYTHONFAULTHANDLER"] = "1"  # a hang, ended by _stop with SIGABRT, shows every stack
    cmd = [sys.executable, "-m", "sphere_rl.cli.app", "train", *args, "--quiet"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_default_sigint)  # fmt: skip


def _default_sigint() -> None:
    """In the child before exec: SIGINT back to its default, so that the child's Python installs
    its handler even where the test runner was started with SIGINT ignored (a background job)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 300) -> None:
    """Poll the file system until ``condition()``; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"{what}: exited early: {proc.communicate()}"
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.05)


def _stop(proc: subprocess.Popen, sig: int) -> tuple[int, str]:
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        _, err = proc.communicate()
        pytest.fail(f"no exit within 120 s of {signal.Signals(sig).name}:\n{err.decode()}")
    return proc.returncode, err.decode()


def test_ctrl_c_inside_training_marks_the_run_interrupted(tmp_path, monkeypatch):
    runner = ContinualRunner.open(build_config(TINY_RUN), tmp_path / "run", show_progress=False)
    original, calls = runner_module.train_iteration, []

    def second_iteration_interrupted(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args)

    monkeypatch.setattr(runner_module, "train_iteration", second_iteration_interrupted)
    with pytest.raises(RunInterrupted, match="interrupted by SIGINT at step 100"):
        runner.run()
    status = _status(tmp_path / "run")
    assert (status["state"], status["signal"], status["global_step"]) == (
        "interrupted",
        "SIGINT",
        100,
    )
    monkeypatch.setattr(runner_module, "train_iteration", original)
    resumed = ContinualRunner.open(None, tmp_path / "run", show_progress=False)
    assert resumed.state.global_step == 100 and resumed.state.iteration == 1


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_inside_a_log_write_lets_the_write_finish(
    tmp_path, monkeypatch, sig, python_signal_handlers
):
    # Raised inside TensorBoard's writer, a KeyboardInterrupt can leave a lock held that the
    # run's clean-up then waits for forever; the signal must wait for the next safe point.
    runner = ContinualRunner.open(build_config(TINY_RUN), tmp_path / "run", show_progress=False)
    original, writes = TensorBoardLog.log, []

    def log_with_a_signal_inside(self, record):
        if record["kind"] == "train" and record["global_step"] == 100:
            signal.raise_signal(sig)
        scalars = original(self, record)
        writes.append(record["global_step"])
        return scalars

    monkeypatch.setattr(TensorBoardLog, "log", log_with_a_signal_inside)
    with pytest.raises(RunInterrupted, match=f"interrupted by {sig.name} at step 100"):
        runner.run()
    assert 100 in writes  # the write the signal arrived in was finished
    status = _status(tmp_path / "run")
    assert (status["state"], status["signal"], status["global_step"]) == (
        "interrupted",
        sig.name,
        100,
    )
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers given back
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    monkeypatch.setattr(TensorBoardLog, "log", original)
    resumed = ContinualRunner.open(None, tmp_path / "run", show_progress=False)
    assert resumed.run()["state"] == "finished"


@pytest.mark.slow  # two training processes and a report: about 30 s
def test_sigint_then_sigterm_leave_an_interrupted_run_that_resumes(tmp_path):
    # Long enough never to finish here: the test stops it.
    config = tmp_path / "c.json"
    config.write_text(json.dumps({**TINY_RUN, "steps_per_task": 1_000_000}))
    proc = _start("--config", str(config), "--out", str(tmp_path / "runs"))
    run_dirs = lambda: list((tmp_path / "runs").glob("*/checkpoints/latest.pt"))  # noqa: E731
    _wait_for(lambda: bool(run_dirs()), proc, "the first checkpoint")
    run_dir = run_dirs()[0].parents[1]
    code, err = _stop(proc, signal.SIGINT)
    status = _status(run_dir)
    assert code == 130 and status["state"] == "interrupted" and status["signal"] == "SIGINT"
    assert "interrupted by SIGINT" in err and f"--resume {run_dir}" in err
    assert "Traceback" not in err
    first_stop = status["global_step"]

    proc = _start("--resume", str(run_dir))
    _wait_for(lambda: _status(run_dir).get("global_step", 0) > first_stop, proc, "a checkpoint")
    code, err = _stop(proc, signal.SIGTERM)
    status = _status(run_dir)
    assert code == 143 and status["state"] == "interrupted" and status["signal"] == "SIGTERM"
    assert status["global_step"] > first_stop and "Traceback" not in err
    # The resume continued the run: one training record per iteration, none twice.
    steps = [
        r["global_step"] for r in read_jsonl(run_dir / "metrics.jsonl") if r["kind"] == "train"
    ]
    assert steps == sorted(set(steps)) and steps[0] == 100

    shown = CliRunner().invoke(app, ["report", str(tmp_path / "runs"), "--out",
                                     str(tmp_path / "report"), "--reps", "10"], terminal_width=300)  # fmt: skip
    assert "interrupted by SIGTERM at step" in " ".join(shown.output.split()), shown.output
