"""How many runs of a sweep fit in this machine's memory, next to how many fit its CPUs.

Peak resident memory per run comes from ``benchmarks/memory_per_run.py`` (numbers and command in
``docs/benchmarks.md``), per task family at the presets' sizes, rounded up for headroom.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

GIB = 2.0**30

# Peak GiB per run by task family, measured 2026-12-06 (docs/benchmarks.md, "Memory per run"):
# hb5 0.61 for "h1", cw10 0.73 for "metaworld", gym:Pendulum-v1 at cw10's sizes 0.51 for "gym".
# The headroom covers what the benchmark's one iteration leaves out: evaluations and diagnostics
# during a task build their environments beside the training ones (+0.09 GiB for cw10's two
# MetaWorld eval envs). "hb5-reference" is an H1 run with a private full model per environment
# (the pre-sharing code, 7.8-8.3 GiB), for the benchmark's check.
RUN_MEMORY_GIB: dict[str, float] = {
    "h1": 0.8,
    "metaworld": 1.0,
    "gym": 0.8,
    "hb5-reference": 8.6,
}


def run_memory_gib(families: Iterable[str]) -> float:
    """Estimated peak GiB of one run whose tasks are of ``families`` (the largest of them)."""
    return max((RUN_MEMORY_GIB.get(family, max(RUN_MEMORY_GIB.values())) for family in families),
               default=RUN_MEMORY_GIB["metaworld"])  # fmt: skip


def available_memory_gib(meminfo: Path = Path("/proc/meminfo")) -> float:
    """Memory the kernel can give new processes without swapping (``MemAvailable``), in GiB."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 / GIB  # the value is in kB
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / GIB  # not Linux


@dataclass(frozen=True)
class Concurrency:
    """How many runs go at once, and which resource set that number."""

    runs: int
    limited_by: str  # "memory" or "CPUs"
    message: str


def size_concurrency(
    cpus: float, cpus_per_run: float, free_gib: float, gib_per_run: float
) -> Concurrency:
    """Runs at once: as many as both the CPUs and the free memory hold, at least one.

    Args:
        cpus: CPUs given to the sweep.
        cpus_per_run: CPUs reserved per run (> 0).
        free_gib: available memory (:func:`available_memory_gib`).
        gib_per_run: estimated peak memory of one run (:func:`run_memory_gib`, > 0).
    """
    by_cpu = max(1, int(cpus / cpus_per_run + 1e-9))
    by_memory = max(1, int(free_gib / gib_per_run + 1e-9))
    runs = min(by_cpu, by_memory)
    if by_memory < by_cpu:
        detail = f"memory ({free_gib:.1f} GiB free, ~{gib_per_run:g} GiB per run)"
        return Concurrency(runs, "memory", f"running {runs} at once: limited by {detail}")
    detail = f"CPUs ({cpus:g} CPUs, {cpus_per_run:g} per run)"
    return Concurrency(runs, "CPUs", f"running {runs} at once: limited by {detail}")
