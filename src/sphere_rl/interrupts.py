"""Stopping training on SIGINT or SIGTERM at a safe point.

Python raises ``KeyboardInterrupt`` at whatever bytecode the main thread runs when SIGINT arrives,
library code included: between a lock's acquisition and the ``try`` that would release it (as in
``queue.Queue.put``, which TensorBoard's event writer calls on every scalar). The lock then stays
held, and the writer's ``close()`` in the run's clean-up waits for it forever. So while a run
trains, :func:`deferred_interrupts` makes both signals only record the request, and the training
loop calls :func:`raise_if_requested` where it holds no such lock: before every environment step,
every minibatch and every iteration. A run therefore stops within one step or minibatch of the
signal, at a point from which its last checkpoint resumes it. A second signal stops it at once,
from wherever it is: the user insists, and a hang is then theirs to break with SIGKILL.

Signals are process-wide, so the request is module state; the handlers are only installed in the
main thread (the only one that may set them) and only over Python's defaults, never over someone
else's handler (a Ray worker's, a test runner's).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["RunInterrupted", "deferred_interrupts", "raise_if_requested"]


class RunInterrupted(KeyboardInterrupt):
    """Training was stopped by a signal (SIGINT, SIGTERM); ``status.json`` says ``interrupted``.

    A ``KeyboardInterrupt``: ``except Exception`` must not swallow it, and code that handles
    Ctrl-C handles it too."""

    def __init__(self, signal_name: str, global_step: int = 0) -> None:
        super().__init__(f"interrupted by {signal_name} at step {global_step:,}")
        self.signal_name, self.global_step = signal_name, global_step


_DEFAULT_HANDLERS = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
_requested: str | None = None  # the name of the signal that asked the run to stop


def raise_if_requested() -> None:
    """Raise :class:`RunInterrupted` if a signal asked the run to stop (a safe point)."""
    if _requested is not None:
        raise RunInterrupted(_requested)


def _record(signum: int, frame: Any) -> None:
    global _requested
    name = signal.Signals(signum).name
    if _requested is not None:
        raise RunInterrupted(name)
    _requested = name


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """While inside, SIGINT and SIGTERM wait for the next :func:`raise_if_requested`.

    Only signals whose handler is Python's default are taken over, and only in the main thread;
    nested use is a no-op. A request still pending at the exit is dropped (the work it would have
    stopped is done)."""
    global _requested
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    taken = {s: h for s, h in _DEFAULT_HANDLERS.items() if signal.getsignal(s) is h}
    for sig in taken:
        signal.signal(sig, _record)
    try:
        yield
    finally:
        for sig, handler in taken.items():
            signal.signal(sig, handler)
        if taken:
            _requested = None
