"""Process-level CPU settings for training: how freed memory is kept (and when it is given back)
and how many threads the learner's minibatch updates use.

Both are speed settings only: they never change what is computed, except that a different intra-op
thread count may round a reduction differently (runs with ``torch_threads > 1`` are therefore not
bit-reproducible; the default, one thread, is).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import gc
import statistics
import sys
import time
from collections.abc import Iterator

import torch

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# The largest mmap threshold glibc accepts on 64-bit systems (4 MiB · sizeof(long)).
_MMAP_THRESHOLD = 32 << 20
_TRIM_THRESHOLD = 512 << 20
_DEFAULT_MMAP_THRESHOLD = 128 << 10  # glibc's initial value

_memory_kept = False


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """glibc, or ``None`` where the C library is another (musl has neither mallopt nor malloc_trim)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes, libc.mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = (ctypes.c_size_t,), ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory() -> bool:
    """Let glibc reuse freed blocks instead of returning them to the kernel; ``True`` if applied.

    A minibatch update allocates and frees the same few-MB tensors (expert weight gradients, Adam
    temporaries) hundreds of times per second. With glibc's defaults, blocks that size are
    mmap-ed and unmapped each time, so every update takes ~1,300 page faults, each zero-filling a
    fresh page (``benchmarks/training_throughput.py`` prints the count). Raising the mmap and trim
    thresholds keeps those blocks in the heap: the faults drop to ~0, at the price of a resident
    size that stays at its peak. A no-op (``False``) where the C library is not glibc.
    """
    global _memory_kept
    if _memory_kept:
        return True
    libc = _libc()
    if libc is None:
        return False
    applied = libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) == 1
    applied = libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1 and applied
    _memory_kept = applied
    return applied


@contextlib.contextmanager
def freed_memory_returned() -> Iterator[None]:
    """Inside, blocks above 128 KiB are mmap-ed and given back to the kernel when freed, as under
    glibc's defaults; :func:`keep_freed_memory`'s threshold is restored on leaving.

    For occasional phases outside the learner (the diagnostics): their float64 temporaries come
    in sizes the learner's kept blocks do not fit, so kept, each one raised the resident set by a
    few MB more (+54 MiB over an hb5 task end's diagnostics, then its memory peak). Their page
    faults cost nothing at that frequency. Changes no computed value; a no-op unless
    :func:`keep_freed_memory` is in effect.
    """
    libc = _libc()
    if not _memory_kept or libc is None:
        yield
        return
    libc.mallopt(_M_MMAP_THRESHOLD, _DEFAULT_MMAP_THRESHOLD)
    try:
        yield
    finally:
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)


def release_freed_memory() -> bool:
    """Free unreachable objects and give the heap's free pages back to the kernel; ``True`` if the
    C library could (glibc's ``malloc_trim``).

    :func:`keep_freed_memory` keeps freed blocks resident for the learner, and glibc never returns
    free pages from the middle of its heap on its own, so what a phase frees stays in the resident
    set even when the next phase cannot reuse it: building environments (model compilation, XML
    parsing) and tearing them down frees tens to hundreds of MB in pieces the learner's tensors do
    not fit. The runner calls this where such memory has just been freed (after building or
    closing environments), never inside an iteration, so the learner's blocks are freed at most
    once per task or evaluation and fault back in once (``docs/benchmarks.md``, "Memory per run").
    Changes no computed value.
    """
    gc.collect()  # environments hold reference cycles: free them now, not at some later collection
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


class LearnerThreads:
    """Runs each minibatch update at whichever of 1 and ``max_threads`` intra-op threads is faster.

    PyTorch parallelises each operator across its threads; the learner's operators are small
    (a 64-state minibatch, ~13 states per expert), so waking and joining worker threads can cost
    more than it saves, and on a busy machine the extra thread waits for a core: measured, two
    threads ran the paper's update at 0.5–0.6× the speed of one (``docs/benchmarks.md``). Rather
    than guess, the first ``2 · (trials + 1)`` minibatches alternate between the two counts (the
    first of each is a warm-up and is dropped), the faster median wall time wins, and the choice
    is measured again every ``recheck_every`` minibatches, since a machine's load changes.
    Everything outside a minibatch update (rollouts, diagnostics) keeps ``max_threads``.

    Args:
        max_threads: the run's ``torch_threads``; at 1 this class never touches the thread count.
        trials: timed minibatches per candidate in each measurement.
        recheck_every: minibatches between measurements.
    """

    def __init__(self, max_threads: int, trials: int = 5, recheck_every: int = 2000) -> None:
        if max_threads < 1:
            raise ValueError(f"max_threads must be at least 1, got {max_threads}")
        self.candidates = (1, max_threads) if max_threads > 1 else (1,)
        self.trials = trials
        self.recheck_every = recheck_every
        self.chosen: int | None = None if len(self.candidates) > 1 else 1
        self._times: dict[int, list[float]] = {n: [] for n in self.candidates}
        self._since_choice = 0

    def _next_count(self) -> int:
        if self.chosen is not None:
            return self.chosen
        return min(self.candidates, key=lambda n: len(self._times[n]))

    def _record(self, threads: int, seconds: float) -> None:
        if self.chosen is not None:
            self._since_choice += 1
            if self._since_choice >= self.recheck_every:
                self.chosen, self._since_choice = None, 0
                self._times = {n: [] for n in self.candidates}
            return
        self._times[threads].append(seconds)
        if all(len(t) > self.trials for t in self._times.values()):
            medians = {n: statistics.median(t[1:]) for n, t in self._times.items()}
            self.chosen = min(medians, key=medians.__getitem__)

    @contextlib.contextmanager
    def minibatch(self) -> Iterator[int]:
        """Run the body (one minibatch update) at the chosen thread count; yields that count."""
        if len(self.candidates) == 1:
            yield 1
            return
        threads = self._next_count()
        outside = torch.get_num_threads()
        torch.set_num_threads(threads)
        start = time.perf_counter()
        try:
            yield threads
        finally:
            elapsed = time.perf_counter() - start
            torch.set_num_threads(outside)
        self._record(threads, elapsed)
