"""Fixtures of the sweep tests."""

import json
from pathlib import Path

import pytest


@pytest.fixture
def config_file(tmp_path):
    def write(overrides: dict) -> Path:
        path = tmp_path / "sweep-config.json"
        path.write_text(json.dumps(overrides))
        return path

    return write
