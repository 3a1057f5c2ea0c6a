"""Fixtures shared by every test folder."""

import signal
import sys

import pytest

from sphere_rl import methods


@pytest.fixture
def isolated_registries(monkeypatch):
    """Plug-ins registered inside the test go into copies of the registries, so nothing leaks into
    later tests (whose modules may hold the original dicts)."""
    for name in ("METHODS", "COMPONENTS"):
        monkeypatch.setattr(methods, name, dict(getattr(methods, name)))
    monkeypatch.setattr(sys, "path", list(sys.path))


@pytest.fixture
def python_signal_handlers():
    """Python's own SIGINT and SIGTERM handlers for the test, whatever the runner inherited: a
    shell that starts a job in the background without job control (``make test &``, a CI agent)
    makes SIGINT ignored, and a Python started so keeps it ignored."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    for sig, handler in previous.items():
        signal.signal(sig, handler)
