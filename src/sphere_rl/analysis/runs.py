"""Load run directories (written by :mod:`sphere_rl.continual.runner`) into plain Python data."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sphere_rl.config import saved_config
from sphere_rl.continual.rundir import RunFileError, read_json, read_jsonl

# Keys of a configuration that distinguish experiments rather than repetitions of one: everything
# except the seed. Used to group seeds and to find a CRL run's RL reference.
_REPETITION_KEYS = ("seed",)
_LOAD_KEY = re.compile(r"routing/load_e(\d+)")  # not routing/load_entropy


@dataclass
class RunData:
    path: Path
    config: dict[str, Any]
    tasks: list[str]
    status: dict[str, Any]
    train: list[dict[str, Any]]
    evals: list[dict[str, Any]]
    diags: list[dict[str, Any]]
    info: dict[str, Any] = field(default_factory=dict)  # run.json (segments: provenance)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def method(self) -> str:
        return self.config["method"]

    @property
    def protocol(self) -> str:
        return self.config["protocol"]

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @property
    def sequence(self) -> str:
        """The benchmark's name, or the custom task list joined with '+'."""
        return self.config.get("benchmark") or "+".join(self.tasks)

    @property
    def state(self) -> str:
        return self.status.get("state", "new")

    @property
    def finished(self) -> bool:
        return self.state == "finished"

    @property
    def tasks_done(self) -> int:
        """Tasks whose training ended (their task-end evaluation is logged)."""
        return len({r["train_task_index"] for r in self.evals if r["eval_kind"] == "task_end"})

    @property
    def steps_per_task(self) -> int:
        cfg = self.config
        per_iteration = cfg["num_envs"] * cfg["num_steps"]
        return max(1, cfg["steps_per_task"] // per_iteration) * per_iteration

    def experiment_key(self, *ignore: str) -> tuple:
        """Hashable configuration without the seed (and ``ignore`` keys): runs sharing it are
        seeds of one experiment."""
        drop = set(_REPETITION_KEYS) | set(ignore)
        return tuple(sorted((k, repr(v)) for k, v in self.config.items() if k not in drop))

    def task_end_matrix(self) -> np.ndarray:
        """``(n_tasks, n_tasks)`` success of task ``j`` (column) at the end of training task ``i``
        (row); NaN where not evaluated (RL protocol, or a partial run)."""
        n = len(self.tasks)
        matrix = np.full((n, n), np.nan)
        for r in self.evals:
            if r["eval_kind"] == "task_end":
                matrix[r["train_task_index"], r["eval_task_index"]] = r["success"]
        return matrix

    def current_task_curve(self, task: int) -> tuple[np.ndarray, np.ndarray]:
        """Success on ``task`` while it was being trained: ``(steps into the task, success)``,
        sorted by step, from the periodic and task-end evaluations."""
        start = task * self.steps_per_task
        points = sorted(
            (r["global_step"] - start, r["success"])
            for r in self.evals
            if r["train_task_index"] == task and r["eval_task_index"] == task
        )
        if not points:
            return np.zeros(0), np.zeros(0)
        steps, success = zip(*points, strict=True)
        return np.asarray(steps, dtype=float), np.asarray(success, dtype=float)

    def diag_series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """``(global steps, values)`` of one diagnostic key over training."""
        points = [(r["global_step"], r[key]) for r in self.diags if r.get(key) is not None]
        if not points:
            return np.zeros(0), np.zeros(0)
        steps, values = zip(*points, strict=True)
        return np.asarray(steps, dtype=float), np.asarray(values, dtype=float)

    def diag_at_task_ends(self, key: str) -> list[float]:
        """The last diagnostic value of ``key`` logged on each finished task."""
        values = {}
        for r in self.diags:
            if key in r:
                values[r["task_index"]] = r[key]
        return [values[i] for i in sorted(values)]

    def routing_keys(self) -> list[str]:
        """``routing/load_e{i}`` keys in expert order (empty for dense actors)."""
        experts = {int(m[1]) for r in self.diags for k in r if (m := _LOAD_KEY.fullmatch(k))}
        return [f"routing/load_e{e}" for e in sorted(experts)]


class RunLoadError(ValueError):
    """A run directory that cannot be read back (a missing, damaged or foreign file)."""


def current_train_names(record: dict[str, Any]) -> dict[str, Any]:
    """A ``train`` record with this version's key names: runs written before the per-minibatch
    penalty scale had its own name logged ``reg/<name>_scale`` as ``reg/<name>_coef``.

    A ``reg/<x>_coef`` is that old name only next to its penalty ``reg/<x>`` and without a
    ``reg/<x>_scale`` (a plug-in penalty called ``<x>_coef`` keeps its name).
    """
    renamed = {}
    for key, value in record.items():
        base = key.removesuffix("_coef")
        old = key.startswith("reg/") and base != key and base in record
        if old and f"{base}_scale" not in record:
            key = f"{base}_scale"
        renamed[key] = value
    return renamed


def load_run(path: Path) -> RunData:
    """Read one run directory.

    Raises:
        FileNotFoundError: if ``path`` holds no config.json.
        RunLoadError: naming the run and the file that cannot be read.
    """
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a run directory (no config.json)")
    try:
        records = read_jsonl(path / "metrics.jsonl")
        status_path = path / "status.json"
        config = read_json(path / "config.json")
        run = read_json(path / "run.json") if (path / "run.json").is_file() else None
        if not isinstance(config, dict) or not isinstance(run, dict) or "tasks" not in run:
            raise RunLoadError(f"{path}: config.json or run.json is missing or not a run's")
        config = saved_config(config)
        return RunData(
            path=path,
            config=config,
            tasks=list(run["tasks"]),
            status=read_json(status_path) if status_path.exists() else {"state": "new"},
            train=[current_train_names(r) for r in records if r["kind"] == "train"],
            evals=[r for r in records if r["kind"] == "eval"],
            diags=[r for r in records if r["kind"] == "diag"],
            info=run,
        )
    except RunFileError as err:
        raise RunLoadError(str(err)) from None
    except (OSError, KeyError, TypeError) as err:
        raise RunLoadError(f"{path}: unreadable ({type(err).__name__}: {err})") from None


def find_runs(root: Path, unreadable: list[RunLoadError] | None = None) -> list[RunData]:
    """Every run directory under ``root`` (searched recursively), sorted by path.

    Args:
        unreadable: if given, runs that cannot be read are appended here and left out instead of
            raising :class:`RunLoadError`.
    """
    runs = []
    for config in sorted(Path(root).rglob("config.json")):
        try:
            runs.append(load_run(config.parent))
        except RunLoadError as err:
            if unreadable is None:
                raise
            unreadable.append(err)
    return runs
