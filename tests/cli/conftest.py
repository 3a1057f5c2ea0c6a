"""Fixtures of the CLI tests: one tiny finished run (real MetaWorld), copied per test."""

import json
import shutil
from pathlib import Path

import pytest
from cli_helpers import TINY_RUN

from sphere_rl.config import build_config
from sphere_rl.continual.runner import ContinualRunner


@pytest.fixture(scope="session")
def _finished_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    ContinualRunner.open(build_config(TINY_RUN), run_dir, show_progress=False).run()
    return run_dir


@pytest.fixture
def finished_run(_finished_run, tmp_path) -> Path:
    """A fresh copy of a finished tiny run (its state can be edited freely)."""
    run_dir = tmp_path / "runs" / "run"
    shutil.copytree(_finished_run, run_dir)
    return run_dir


@pytest.fixture
def interrupted_run(finished_run) -> Path:
    """The finished run as a kill after its last checkpoint leaves it: status ``running``."""
    status = json.loads((finished_run / "status.json").read_text())
    (finished_run / "status.json").write_text(json.dumps({**status, "state": "running"}))
    return finished_run
