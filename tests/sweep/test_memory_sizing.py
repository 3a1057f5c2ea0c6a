"""``sphere sweep`` runs as many runs at once as both the CPUs and the free memory hold."""

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sphere_rl.cli.app import _register_all, app
from sphere_rl.sweep import memory
from sphere_rl.sweep.memory import (
    GIB,
    RUN_MEMORY_GIB,
    available_memory_gib,
    entk_memory_gib,
    run_memory_gib,
    size_concurrency,
)

_register_all()


@pytest.mark.parametrize(
    ("cpus", "per_cpu", "free", "per_gib", "runs", "by"),
    [
        (16, 1.0, 24.0, 8.6, 2, "memory"),  # the case: 16 cores, 8.6 GiB runs
        (16, 1.0, 64.0, 0.5, 16, "CPUs"),
        (16, 2.0, 64.0, 0.5, 8, "CPUs"),
        (4, 0.5, 2.0, 0.5, 4, "memory"),  # 8 CPU slots, 4 memory slots
        (2, 1.0, 0.3, 1.0, 1, "memory"),  # never fewer than one run
        (1, 2.0, 10.0, 1.0, 1, "CPUs"),
        (8, 1.0, 3.0, 1.0, 3, "memory"),  # exactly 3 fit: no float truncation to 2
    ],
)
def test_size_concurrency_takes_the_smaller_limit(cpus, per_cpu, free, per_gib, runs, by):
    sizing = size_concurrency(cpus, per_cpu, free, per_gib)
    assert (sizing.runs, sizing.limited_by) == (runs, by)
    assert sizing.runs == max(1, min(int(cpus // per_cpu), int(free // per_gib + 1e-9)))
    assert sizing.message.startswith(f"running {runs} at once: limited by {by}")


def test_memory_message_names_free_and_per_run_memory():
    message = size_concurrency(16, 1.0, 24.0, 8.6).message
    assert message == "running 2 at once: limited by memory (24.0 GiB free, ~8.6 GiB per run)"


def test_run_memory_is_the_largest_family_of_the_sweep():
    both = run_memory_gib({"h1", "metaworld"})
    assert both == max(RUN_MEMORY_GIB["h1"], RUN_MEMORY_GIB["metaworld"])
    assert run_memory_gib({"metaworld"}) == RUN_MEMORY_GIB["metaworld"]
    assert run_memory_gib({"unknown-family"}) == max(
        RUN_MEMORY_GIB.values()
    )  # err on the safe side


def test_the_entk_diagnostic_adds_its_kernel_to_a_run(monkeypatch):
    samples = 256
    kernel_gib = (samples * 19) ** 2 * 8 / GIB  # hb5: the (N·A)² float64 kernel, 0.18 GiB
    h1 = run_memory_gib({"h1"}, entk_samples=samples)
    assert h1 - RUN_MEMORY_GIB["h1"] == pytest.approx(entk_memory_gib(samples, 19))
    assert h1 - RUN_MEMORY_GIB["h1"] > 3 * kernel_gib
    # A sweep's largest action space sets the term, an unknown family counts as the largest.
    mixed = run_memory_gib({"metaworld", "h1"}, entk_samples=samples)
    assert mixed == pytest.approx(RUN_MEMORY_GIB["metaworld"] + entk_memory_gib(samples, 19))
    assert run_memory_gib({"metaworld"}, entk_samples=samples) < mixed


_MEASURE_ENTK = """
import sys
from pathlib import Path
import torch
from sphere_rl.config import build_config
from sphere_rl.methods import build_agent
from sphere_rl.metrics import plasticity_report
from sphere_rl.runtime import keep_freed_memory, release_freed_memory
keep_freed_memory()  # as in a run
samples = int(sys.argv[1])
agent = build_agent(build_config({"preset": "hb5", "method": "topk_moe"}), 151, 19)
obs = torch.randn(samples, 151)
plasticity_report(agent.actor, obs, include_entk=False)  # the rest of the diagnostics: the base
release_freed_memory()
Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
status = Path("/proc/self/status").read_text()
before = int(status.split("VmRSS:")[1].split()[0])
plasticity_report(agent.actor, obs, include_entk=True)
status = Path("/proc/self/status").read_text()
print((int(status.split("VmHWM:")[1].split()[0]) - before) / 2**20)  # GiB
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux peak reset")
def test_the_entk_estimate_bounds_the_measured_peak_of_an_h1_diagnostic():
    # The oracle is the diagnostic itself: the paper-size MoE on 64 H1 states (the quick preset).
    out = subprocess.run([sys.executable, "-c", _MEASURE_ENTK, "64"], capture_output=True,
                         text=True, check=True)  # fmt: skip
    measured = float(out.stdout.split()[-1])
    estimate = entk_memory_gib(64, 19)
    assert measured <= estimate, f"the eNTK took {measured:.3f} GiB, estimated {estimate:.3f}"
    assert measured >= 0.5 * estimate, f"estimate {estimate:.3f} GiB, only {measured:.3f} taken"


def test_available_memory_reads_memavailable(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24576000 kB\nMemFree:  1 kB\nMemAvailable:   12582912 kB\n")
    assert available_memory_gib(meminfo) == 12.0  # 12582912 kB = 12 GiB


def test_dry_run_says_how_many_runs_go_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "available_memory_gib", lambda: 2.5)
    gib = run_memory_gib({"h1"}, entk_samples=64)  # the quick preset diagnoses 64 states with eNTK
    result = CliRunner().invoke(
        app,
        [
            "sweep",
            "--benchmark",
            "hb5",
            "--methods",
            "ppo,sphere",
            "--seeds",
            "0-3",
            "--preset",
            "quick",
            "--num-cpus",
            "8",
            "--out",
            str(tmp_path),
            "--dry-run",
        ],
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    runs = max(1, int(2.5 / gib + 1e-9))
    assert f"running {runs} at once: limited by memory (2.5 GiB free, ~{gib:.2g} GiB per run)" in (
        result.output
    )
