"""Load run directories (written by :mod:`sphere_rl.continual.runner`) into plain Python data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sphere_rl.continual.rundir import read_json, read_jsonl


@dataclass
class RunData:
    path: Path
    config: dict[str, Any]
    tasks: list[str]
    status: dict[str, Any]
    train: list[dict[str, Any]]
    evals: list[dict[str, Any]]
    diags: list[dict[str, Any]]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def method(self) -> str:
        return self.config["method"]

    @property
    def finished(self) -> bool:
        return self.status.get("state") == "finished"

    @property
    def steps_per_task(self) -> int:
        cfg = self.config
        per_iteration = cfg["num_envs"] * cfg["num_steps"]
        return max(1, cfg["steps_per_task"] // per_iteration) * per_iteration

    def task_end_matrix(self) -> np.ndarray:
        """``(n_tasks, n_tasks)`` success of task ``j`` (column) at the end of training task ``i``
        (row); NaN where not evaluated (RL protocol, or a partial run)."""
        n = len(self.tasks)
        matrix = np.full((n, n), np.nan)
        for r in self.evals:
            if r["eval_kind"] == "task_end":
                matrix[r["train_task_index"], r["eval_task_index"]] = r["success"]
        return matrix

    def diag_at_task_ends(self, key: str) -> list[float]:
        """The last diagnostic value of ``key`` logged on each finished task."""
        values = {}
        for r in self.diags:
            if key in r:
                values[r["task_index"]] = r[key]
        return [values[i] for i in sorted(values)]


def load_run(path: Path) -> RunData:
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a run directory (no config.json)")
    records = read_jsonl(path / "metrics.jsonl")
    status_path = path / "status.json"
    return RunData(
        path=path,
        config=read_json(path / "config.json"),
        tasks=list(read_json(path / "run.json")["tasks"]),
        status=read_json(status_path) if status_path.exists() else {"state": "new"},
        train=[r for r in records if r["kind"] == "train"],
        evals=[r for r in records if r["kind"] == "eval"],
        diags=[r for r in records if r["kind"] == "diag"],
    )


def find_runs(root: Path) -> list[RunData]:
    """Every run directory under ``root`` (searched recursively), sorted by path."""
    return [load_run(p.parent) for p in sorted(Path(root).rglob("config.json"))]
