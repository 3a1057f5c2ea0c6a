"""SIGINT and SIGTERM wait for a safe point while a run trains (sphere_rl.interrupts).

Signals here are real (``signal.raise_signal``): Python runs the handler right after the call
returns, so without deferral the ``KeyboardInterrupt`` would come out of the line that raised it.
"""

import signal
import threading

import pytest

from sphere_rl.interrupts import RunInterrupted, deferred_interrupts, raise_if_requested


@pytest.fixture(autouse=True)
def _python_defaults(python_signal_handlers):
    """Each test starts with Python's own handlers and must leave them in place."""
    yield
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_waits_for_the_next_safe_point(sig):
    work_done = []
    with deferred_interrupts():
        raise_if_requested()  # nothing asked yet
        signal.raise_signal(sig)
        work_done.append("the rest of the unsafe section")
        with pytest.raises(RunInterrupted) as stopped:
            raise_if_requested()
    assert work_done and stopped.value.signal_name == sig.name
    assert isinstance(stopped.value, KeyboardInterrupt)  # code that handles Ctrl-C handles it


def test_a_second_signal_stops_at_once():
    with deferred_interrupts():
        signal.raise_signal(signal.SIGINT)
        with pytest.raises(RunInterrupted) as stopped:
            signal.raise_signal(signal.SIGTERM)
    assert stopped.value.signal_name == "SIGTERM"


def test_a_request_left_at_the_exit_is_dropped():
    with deferred_interrupts():
        signal.raise_signal(signal.SIGINT)
    raise_if_requested()  # the next run is not stopped by the last one's signal
    with pytest.raises(KeyboardInterrupt) as raised:
        signal.raise_signal(signal.SIGINT)  # Python's handler again
    assert not isinstance(raised.value, RunInterrupted)


def test_nested_use_keeps_the_outer_request():
    with deferred_interrupts():
        with deferred_interrupts():
            signal.raise_signal(signal.SIGINT)
        with pytest.raises(RunInterrupted):
            raise_if_requested()


def test_someone_elses_handler_is_left_alone():
    seen = []
    signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with deferred_interrupts():
            assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler  # taken
            signal.raise_signal(signal.SIGTERM)
            raise_if_requested()  # the SIGTERM was the other handler's, not a stop request
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_outside_the_main_thread_nothing_changes():
    handlers = []

    def enter():
        with deferred_interrupts():
            handlers.append(signal.getsignal(signal.SIGINT))

    worker = threading.Thread(target=enter)
    worker.start()
    worker.join()
    assert handlers == [signal.default_int_handler]
