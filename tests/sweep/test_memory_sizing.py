"""``sphere sweep`` runs as many runs at once as both the CPUs and the free memory hold."""

import pytest
from typer.testing import CliRunner

from sphere_rl.cli.app import _register_all, app
from sphere_rl.sweep import memory
from sphere_rl.sweep.memory import (
    RUN_MEMORY_GIB,
    available_memory_gib,
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


def test_available_memory_reads_memavailable(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24576000 kB\nMemFree:  1 kB\nMemAvailable:   12582912 kB\n")
    assert available_memory_gib(meminfo) == 12.0  # 12582912 kB = 12 GiB


def test_dry_run_says_how_many_runs_go_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "available_memory_gib", lambda: 2.5)
    gib = RUN_MEMORY_GIB["h1"]
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
    assert f"running {runs} at once: limited by memory (2.5 GiB free, ~{gib:g} GiB per run)" in (
        result.output
    )
