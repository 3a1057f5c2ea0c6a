"""Fixtures shared by every test folder."""

import sys

import pytest

from sphere_rl import methods


@pytest.fixture
def isolated_registries(monkeypatch):
    """Plug-ins registered inside the test go into copies of the registries, so nothing leaks into
    later tests (whose modules may hold the original dicts)."""
    for name in ("METHODS", "REGULARIZERS", "CALLBACKS", "PLUGIN_INFO"):
        monkeypatch.setattr(methods, name, dict(getattr(methods, name)))
    monkeypatch.setattr(sys, "path", list(sys.path))
