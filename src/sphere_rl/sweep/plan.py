"""What a sweep has to do for each run, read from its run directory before anything starts.

This is what makes re-running a sweep idempotent: finished runs are skipped without starting a
worker, interrupted ones resume from their latest checkpoint, and a directory holding a different
configuration is reported instead of overwritten.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sphere_rl.config import ExperimentConfig, config_diff, saved_config
from sphere_rl.continual.rundir import RunFileError, read_json
from sphere_rl.continual.runner import find_run_dir
from sphere_rl.sweep.grid import variant_name

NEW, RESUME, SKIP, RETRY, CONFLICT = "new", "resume", "skip", "retry", "conflict"


@dataclass(frozen=True)
class PlannedRun:
    cfg: ExperimentConfig
    run_dir: Path
    action: str  # new | resume | retry | skip | conflict
    note: str = ""
    state: str = "new"  # what status.json said: new | running | finished | failed
    global_step: int = 0  # where the run stood
    variant: str = ""  # the sub-folder of a --vary combination

    @property
    def name(self) -> str:
        return f"{self.variant}/{self.run_dir.name}" if self.variant else self.run_dir.name

    @property
    def submit(self) -> bool:
        """Whether this run needs a worker."""
        return self.action in (NEW, RESUME, RETRY)


def plan_run(
    cfg: ExperimentConfig, out: Path, retry_failed: bool = False, variant: str = ""
) -> PlannedRun:
    """Read ``out/[variant/]<run_dir_name(cfg)>`` (or the run's directory under its old name,
    :func:`~sphere_rl.continual.runner.find_run_dir`) and decide what to do with it (see the
    module doc)."""
    run_dir = find_run_dir(cfg, Path(out) / variant).absolute()
    config_path = run_dir / "config.json"
    if not config_path.exists():
        return PlannedRun(cfg, run_dir, NEW, variant=variant)
    try:
        saved = read_json(config_path)
        saved = saved_config(saved) if isinstance(saved, dict) else saved
        diff = config_diff(saved, cfg.to_dict()) if isinstance(saved, dict) else ["config.json"]
        status_path = run_dir / "status.json"
        status = read_json(status_path) if status_path.exists() else {"state": "running"}
    except RunFileError as err:  # a damaged run is reported, never overwritten
        return PlannedRun(cfg, run_dir, CONFLICT, f"damaged: {err}", variant=variant)
    if diff:
        note = f"holds a different configuration ({diff})"
        return PlannedRun(cfg, run_dir, CONFLICT, note, variant=variant)
    state, step = status.get("state", "running"), status.get("global_step", 0)
    if state == "finished":
        action, note = SKIP, "already finished"
    elif state == "failed":
        # A run fails deterministically (NaN loss) when resumed the same way: don't burn time.
        action, note = (RETRY if retry_failed else SKIP), f"failed before: {status.get('error')}"
    else:
        action, note = RESUME, f"interrupted at step {step:,}"
    return PlannedRun(cfg, run_dir, action, note, state, step, variant)


def plan_runs(
    configs: Sequence[ExperimentConfig],
    out: Path,
    retry_failed: bool = False,
    vary: Sequence[str] = (),
) -> list[PlannedRun]:
    """Plan every configuration; two configurations sharing a run directory are a conflict.

    ``vary``: the keys of the grid's variations, which name each run's sub-folder.
    """
    plans = [plan_run(cfg, out, retry_failed, variant_name(cfg, list(vary))) for cfg in configs]
    seen: dict[Path, int] = {}
    for i, plan in enumerate(plans):
        if plan.run_dir in seen:
            note = f"same run directory as grid point {seen[plan.run_dir]}"
            plans[i] = PlannedRun(plan.cfg, plan.run_dir, CONFLICT, note)
        seen.setdefault(plan.run_dir, i)
    return plans
