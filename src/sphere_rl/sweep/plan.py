"""What a sweep has to do for each run, read from its run directory before anything starts.

This is what makes re-running a sweep idempotent: finished runs are skipped without starting a
worker, interrupted ones resume from their latest checkpoint, and a directory holding a different
configuration is reported instead of overwritten.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sphere_rl.config import ExperimentConfig, config_diff
from sphere_rl.continual.rundir import RunFileError, read_json
from sphere_rl.continual.runner import run_dir_name

NEW, RESUME, SKIP, RETRY, CONFLICT = "new", "resume", "skip", "retry", "conflict"


@dataclass(frozen=True)
class PlannedRun:
    cfg: ExperimentConfig
    run_dir: Path
    action: str  # new | resume | retry | skip | conflict
    note: str = ""
    state: str = "new"  # what status.json said: new | running | finished | failed
    global_step: int = 0  # where the run stood

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def submit(self) -> bool:
        """Whether this run needs a worker."""
        return self.action in (NEW, RESUME, RETRY)


def plan_run(cfg: ExperimentConfig, out: Path, retry_failed: bool = False) -> PlannedRun:
    """Read ``out/<run_dir_name(cfg)>`` and decide what to do with it (see the module doc)."""
    run_dir = (Path(out) / run_dir_name(cfg)).absolute()
    config_path = run_dir / "config.json"
    if not config_path.exists():
        return PlannedRun(cfg, run_dir, NEW)
    try:
        saved = read_json(config_path)
        diff = config_diff(saved, cfg.to_dict()) if isinstance(saved, dict) else ["config.json"]
        status_path = run_dir / "status.json"
        status = read_json(status_path) if status_path.exists() else {"state": "running"}
    except RunFileError as err:  # a damaged run is reported, never overwritten
        return PlannedRun(cfg, run_dir, CONFLICT, f"damaged: {err}")
    if diff:
        return PlannedRun(cfg, run_dir, CONFLICT, f"holds a different configuration ({diff})")
    state, step = status.get("state", "running"), status.get("global_step", 0)
    if state == "finished":
        return PlannedRun(cfg, run_dir, SKIP, "already finished", state, step)
    if state == "failed":
        note = f"failed before: {status.get('error')}"
        # A run fails deterministically (NaN loss) when resumed the same way: don't burn time.
        return PlannedRun(cfg, run_dir, RETRY if retry_failed else SKIP, note, state, step)
    return PlannedRun(cfg, run_dir, RESUME, f"interrupted at step {step:,}", state, step)


def plan_runs(
    configs: Sequence[ExperimentConfig], out: Path, retry_failed: bool = False
) -> list[PlannedRun]:
    """Plan every configuration; two configurations sharing a run directory are a conflict."""
    plans = [plan_run(cfg, out, retry_failed) for cfg in configs]
    seen: dict[Path, int] = {}
    for i, plan in enumerate(plans):
        if plan.run_dir in seen:
            note = f"same run directory as grid point {seen[plan.run_dir]}"
            plans[i] = PlannedRun(plan.cfg, plan.run_dir, CONFLICT, note)
        seen.setdefault(plan.run_dir, i)
    return plans
