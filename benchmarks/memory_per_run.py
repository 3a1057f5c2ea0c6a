"""Peak resident memory of one training run: a 2,048-step ``hb5`` run and a ``cw10`` run of
``topk_moe``, each in a fresh process, against the private-full-model reference.

    python benchmarks/memory_per_run.py                   # hb5 (shared and reference) and cw10
    python benchmarks/memory_per_run.py --presets hb5 --skip-reference
    python benchmarks/memory_per_run.py --entk            # with the eNTK diagnostic at the task end

*hb5*: one iteration of the preset's first task, 128 H1 environments × 16 steps = 2,048 steps.
*cw10*: one iteration of its first task, 8 MetaWorld environments × 256 steps (the preset's 2,048
steps per environment only lengthen the rollout buffer, a few MB).
*Reference*: the H1 environments each compile a private copy of the full visual model
(``physics_model="private"``), as every H1 environment did before models were shared; the cw10
run has no H1 environments, so it has no reference.

The task end diagnoses without the eNTK unless ``--entk`` (the default ``diag_entk``: its
``(N·A)²`` kernel is measured separately, ``sphere_rl.sweep.memory.entk_memory_gib``).
Each run is a fresh ``spawn`` process; its peak is ``ru_maxrss``, printed in GiB and in GB. *Baseline* is the same process's
resident memory after importing torch and sphere_rl, before building anything.
"""

# isort: off
import sphere_rl  # noqa: F401  first: sets the OpenMP wait policy before torch loads
# isort: on

import argparse
import multiprocessing as mp
import os
import resource
import tempfile
from pathlib import Path

from sphere_rl.config import build_config
from sphere_rl.continual import seeding
from sphere_rl.continual.runner import ContinualRunner
from sphere_rl.envs import resolve_tasks
from sphere_rl.envs.registry import task_options, task_spec
from sphere_rl.sweep.memory import GIB, RUN_MEMORY_GIB, available_memory_gib

SHAPES = {"hb5": {}, "cw10": {"num_steps": 256}}  # overrides on top of the preset


def _resident_gib() -> float:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) * 1024 / GIB  # kB


def _private_full_models(task: str, **keys) -> dict:
    options = task_options(task, **keys)
    return {**options, "physics_model": "private"} if task_spec(task).family == "h1" else options


def peak_memory(preset: str, reference: bool, entk: bool = False) -> dict[str, float]:
    """Run one iteration of ``preset``'s first task here; peak and baseline resident GiB."""
    baseline = _resident_gib()
    if reference:
        seeding.task_options = _private_full_models  # every env of the run takes its options there
    overrides = {"preset": preset, "method": "topk_moe", **SHAPES[preset], "diag_entk": entk,
                 "eval_interval": 10**12, "diag_interval": 10**12,
                 "checkpoint_interval": 10**12, "torch_threads": 1}  # fmt: skip
    base = build_config(overrides)
    cfg = build_config(
        {
            **overrides,
            "benchmark": None,
            "tasks": resolve_tasks(base.benchmark)[:1],
            "steps_per_task": base.steps_per_iteration,
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        ContinualRunner.open(cfg, Path(tmp) / "run", show_progress=False).run()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB  # Linux: KiB
    return {"peak": peak, "baseline": baseline, "steps": cfg.steps_per_iteration}


def peak_memory_fresh(preset: str, reference: bool, entk: bool = False) -> dict[str, float]:
    """:func:`peak_memory` in a fresh process, so that each peak is that run's alone."""
    with mp.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(peak_memory, (preset, reference, entk))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="hb5,cw10")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--entk", action="store_true", help="diagnose with the eNTK too")
    args = parser.parse_args()
    print(f"cores {os.cpu_count()}, available memory {available_memory_gib():.1f} GiB")
    for preset in args.presets.split(","):
        shared = peak_memory_fresh(preset, reference=False, entk=args.entk)
        line = (
            f"{preset}: {shared['steps']:,} steps{' with eNTK' if args.entk else ''},"
            f" peak {shared['peak']:.2f} GiB = {shared['peak'] * GIB / 1e9:.3f} GB"
            f" (baseline after imports {shared['baseline']:.2f} GiB)"
        )
        is_h1 = task_spec(resolve_tasks(preset)[0]).family == "h1"
        need = RUN_MEMORY_GIB.get(f"{preset}-reference", 0.0)
        if is_h1 and not args.skip_reference and available_memory_gib() > 1.5 * need:
            ref = peak_memory_fresh(preset, reference=True, entk=args.entk)
            line += (
                f"; reference (private full models) peak {ref['peak']:.2f} GiB:"
                f" {ref['peak'] / shared['peak']:.1f}x as much"
            )
        elif is_h1 and not args.skip_reference:
            line += f"; reference skipped: it needs ~{need:g} GiB, not available"
        print(line, flush=True)


if __name__ == "__main__":
    main()
