"""Process-level CPU settings: freed memory kept for reuse and given back, the learner's thread count by
measurement."""

import subprocess
import sys
import textwrap

import pytest
import torch

from sphere_rl import runtime
from sphere_rl.algo.buffer import RolloutBuffer
from sphere_rl.config import build_config
from sphere_rl.methods import build_agent
from sphere_rl.runtime import LearnerThreads

# Resident memory (MiB) given back to the kernel when a 16 MiB tensor (the order of the stacked
# expert weights' gradients and Adam temporaries) is freed. Page-fault counts would show the cost
# more directly but vary tenfold with the kernel's transparent huge pages; this does not.
_RETURNED = textwrap.dedent(
    """
    import os, sys, torch
    from sphere_rl.runtime import freed_memory_returned, keep_freed_memory
    if sys.argv[1] != "default":
        assert keep_freed_memory()
    def resident_mib():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    if sys.argv[1] == "return, then keep again":
        with freed_memory_returned():
            pass
    with freed_memory_returned() if sys.argv[1] == "keep, then return" else open(os.devnull):
        block = torch.ones(4 << 20)
        before = resident_mib()
        del block
        print(before - resident_mib())
    """
)


# The learner's freed blocks, kept (keep_freed_memory), given back by release_freed_memory: the
# memory a phase frees (environments torn down, construction scratch) leaves the resident set.
_RELEASED = textwrap.dedent(
    """
    import os, torch
    from sphere_rl.runtime import keep_freed_memory, release_freed_memory
    assert keep_freed_memory()
    def resident_mib():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    blocks = [torch.ones(1 << 20) for _ in range(16)]  # 16 x 4 MiB, kept in the heap when freed
    del blocks
    before = resident_mib()
    assert release_freed_memory()
    print(before - resident_mib())
    """
)


def _returned_mib(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", _RETURNED, mode], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return float(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_memory_keeps_freed_blocks_for_reuse():
    # By default glibc unmaps a freed block of this size (the next allocation faults its pages in
    # again, zero-filled); kept, it stays in the heap for the next tensor.
    assert _returned_mib("default") > 12
    assert abs(_returned_mib("keep")) < 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_returned_gives_blocks_back_for_a_while():
    # The diagnostics' phase: its blocks leave the resident set when freed, as by default.
    assert _returned_mib("keep, then return") > 12
    assert abs(_returned_mib("return, then keep again")) < 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_release_freed_memory_gives_kept_blocks_back():
    out = subprocess.run([sys.executable, "-c", _RELEASED], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.split()[-1]) > 48  # of the 64 MiB freed


class _Clock:
    """A perf_counter whose minibatches take a chosen time per thread count."""

    def __init__(self, cost: dict[int, float]):
        self.cost, self.now = cost, 0.0

    def perf_counter(self) -> float:
        return self.now


def _run(threads: LearnerThreads, clock: _Clock, minibatches: int) -> list[int]:
    used = []
    for _ in range(minibatches):
        with threads.minibatch() as n:
            assert torch.get_num_threads() == n
            clock.now += clock.cost[n]
        used.append(n)
    return used


@pytest.mark.parametrize(("cost", "winner"), [({1: 1.0, 2: 1.6}, 1), ({1: 1.0, 2: 0.6}, 2)])
def test_learner_threads_keeps_the_faster_count(monkeypatch, cost, winner):
    clock = _Clock(cost)
    monkeypatch.setattr(runtime.time, "perf_counter", clock.perf_counter)
    outside = torch.get_num_threads()
    threads = LearnerThreads(2, trials=3, recheck_every=100)
    used = _run(threads, clock, 20)
    # Alternates until each count has a warm-up and three timed minibatches, then keeps the winner.
    assert sorted(used[:8]) == [1, 1, 1, 1, 2, 2, 2, 2]
    assert used[8:] == [winner] * 12
    assert threads.chosen == winner
    assert torch.get_num_threads() == outside


def test_learner_threads_measures_again_when_the_load_changes(monkeypatch):
    clock = _Clock({1: 1.0, 2: 0.5})
    monkeypatch.setattr(runtime.time, "perf_counter", clock.perf_counter)
    threads = LearnerThreads(2, trials=2, recheck_every=10)
    _run(threads, clock, 6 + 10)
    assert threads.chosen is None  # the re-check has started
    clock.cost = {1: 1.0, 2: 3.0}  # a neighbour now takes the second core
    _run(threads, clock, 6)
    assert threads.chosen == 1


def test_learner_threads_ignores_the_warm_up_minibatch(monkeypatch):
    clock = _Clock({1: 1.0, 2: 0.5})
    monkeypatch.setattr(runtime.time, "perf_counter", clock.perf_counter)
    threads = LearnerThreads(2, trials=1)
    clock.cost = {1: 1.0, 2: 50.0}  # the first 2-thread minibatch starts the thread pool
    _run(threads, clock, 2)
    clock.cost = {1: 1.0, 2: 0.5}
    _run(threads, clock, 2)
    assert threads.chosen == 2


def test_one_thread_never_touches_torch(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    with LearnerThreads(1).minibatch() as n:
        assert n == 1
    assert calls == []
    with pytest.raises(ValueError, match="max_threads must be at least 1, got 0"):
        LearnerThreads(0)


def test_every_minibatch_update_runs_inside_the_thread_choice():
    cfg = build_config({"method": "topk_moe", "hidden": [16], "n_experts": 4, "num_envs": 2,
                        "num_steps": 32, "minibatch_size": 16, "update_epochs": 3,
                        "torch_threads": 2})  # fmt: skip
    agent = build_agent(cfg, 5, 2)
    assert agent.learner_threads.candidates == (1, 2)
    buffer = RolloutBuffer.empty(32, 2, 5, 2, "cpu")
    buffer.obs.normal_()
    entered = []
    original = agent.learner_threads.minibatch

    def counting():
        entered.append(1)
        return original()

    agent.learner_threads.minibatch = counting
    agent.update(buffer, torch.randn(32, 2), torch.randn(32, 2))
    assert len(entered) == 3 * (64 // 16)
    assert build_agent(build_config({"method": "ppo"}), 5, 2).learner_threads.candidates == (1,)
