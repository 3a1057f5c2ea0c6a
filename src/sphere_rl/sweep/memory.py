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

# Peak GiB per run by task family, measured 2026-12-06 at 4cd85ce (docs/benchmarks.md, "Memory per
# run"): hb5 0.43 for "h1", cw10 0.65 for "metaworld", gym:Pendulum-v1 at cw10's sizes 0.51 for
# "gym". The headroom covers what the benchmark's one iteration leaves out: evaluations and
# diagnostics during a task build their environments beside the training ones (+0.09 GiB for
# cw10's two MetaWorld eval envs). The eNTK diagnostic comes on top (entk_memory_gib).
# "hb5-reference" is an H1 run with a private full model per environment (the pre-sharing code,
# 7.7-8.3 GiB), for the benchmark's check.
RUN_MEMORY_GIB: dict[str, float] = {
    "h1": 0.6,
    "metaworld": 1.0,
    "gym": 0.8,
    "hb5-reference": 8.6,
}


# Action dimensions by task family, for the eNTK's kernel size; other families count as the largest.
ACTION_DIMS: dict[str, int] = {"h1": 19, "metaworld": 4}

# The eNTK diagnostic's peak above the rest of the run: about four float64 copies of its
# (N·A)² kernel (the kernel, its per-expert blocks, the eigensolver's copy and workspace) and
# 0.15 GiB besides (per-layer cotangents; sympy, which autograd's batched gradient imports).
# Measured +0.15 GiB at N·A = 1,024 and 1,216 and +0.74 GiB at 4,864 (hb5: 256 states × 19).
ENTK_KERNEL_COPIES = 4.0
ENTK_FIXED_GIB = 0.15


def entk_memory_gib(samples: int, action_dim: int) -> float:
    """Estimated extra peak GiB of the eNTK diagnostic on ``samples`` states of ``action_dim``."""
    return ENTK_FIXED_GIB + ENTK_KERNEL_COPIES * (samples * action_dim) ** 2 * 8 / GIB


def run_memory_gib(families: Iterable[str], entk_samples: int = 0) -> float:
    """Estimated peak GiB of one run whose tasks are of ``families`` (the largest of them), with
    the eNTK diagnostic on ``entk_samples`` states on top (0: the eNTK is off)."""
    families = set(families)
    base = max((RUN_MEMORY_GIB.get(family, max(RUN_MEMORY_GIB.values())) for family in families),
               default=RUN_MEMORY_GIB["metaworld"])  # fmt: skip
    if not entk_samples:
        return base
    action_dim = max((ACTION_DIMS.get(f, max(ACTION_DIMS.values())) for f in families),
                     default=max(ACTION_DIMS.values()))  # fmt: skip
    return base + entk_memory_gib(entk_samples, action_dim)


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
        detail = f"memory ({free_gib:.1f} GiB free, ~{gib_per_run:.2g} GiB per run)"
        return Concurrency(runs, "memory", f"running {runs} at once: limited by {detail}")
    detail = f"CPUs ({cpus:g} CPUs, {cpus_per_run:g} per run)"
    return Concurrency(runs, "CPUs", f"running {runs} at once: limited by {detail}")
