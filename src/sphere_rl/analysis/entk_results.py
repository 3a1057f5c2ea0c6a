"""``entk.json`` in a run directory: the r_e(K) values ``sphere entk`` computed, kept so that
``sphere report`` can draw the transfer matrix "r_e(K) of the checkpoint after task i, on task j's
probe states" without recomputing the kernels.

One record per (checkpoint, probe task, probe size, kernel kind); a later ``sphere entk`` call
replaces the records it recomputes and keeps the others. The file is written atomically, under
its own lock (``.entk.json.lock``), so concurrent ``sphere entk`` commands keep every record.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from sphere_rl.continual.rundir import read_json, update_json

ENTK_FILE = "entk.json"
_TASK_END = re.compile(r"task_(\d+)_end")


def checkpoint_task(name: str) -> int | None:
    """Task index of a task-end checkpoint name (``task_003_end`` → 3); None for others."""
    match = _TASK_END.fullmatch(name)
    return int(match[1]) if match else None


def _key(record: dict[str, Any]) -> tuple:
    return (record["checkpoint"], record["probe_task_index"], record["samples"],
            record["trace_outputs"])  # fmt: skip


def read_entk_records(run_dir: Path) -> list[dict[str, Any]]:
    """The records of ``run_dir/entk.json`` (empty when ``sphere entk`` never ran there)."""
    path = Path(run_dir) / ENTK_FILE
    return list(read_json(path)["records"]) if path.is_file() else []


def save_entk_records(run_dir: Path, records: Iterable[dict[str, Any]]) -> Path:
    """Merge ``records`` (keys: checkpoint, probe_task_index, probe_task, samples, trace_outputs,
    entk_rank, proxy_rank) into ``run_dir/entk.json``; returns its path. The merge holds the
    file's lock (:func:`~sphere_rl.continual.rundir.update_json`): two ``sphere entk`` commands
    on one run both keep their records."""
    new = [{**r, "train_task_index": checkpoint_task(r["checkpoint"])} for r in records]

    def merge(saved: dict[str, Any]) -> dict[str, Any]:
        merged = {_key(r): r for r in saved["records"]} | {_key(r): r for r in new}
        ordered = sorted(merged.values(), key=lambda r: (r["checkpoint"], r["probe_task_index"]))
        return {"records": ordered}

    path = Path(run_dir) / ENTK_FILE
    update_json(path, merge, default={"records": []})
    return path


def entk_matrix(records: Iterable[dict[str, Any]], n_tasks: int,
                key: str = "entk_rank") -> np.ndarray:  # fmt: skip
    """``(n_tasks, n_tasks)`` matrix of ``key``: row ``i`` the checkpoint after task ``i``, column
    ``j`` task ``j``'s probe batch; NaN where not computed. Where several probe sizes or kernel
    kinds were computed for one cell, the largest probe wins (then the full NA×NA kernel over the
    output-traced one)."""
    matrix = np.full((n_tasks, n_tasks), np.nan)
    chosen: dict[tuple[int, int], tuple] = {}
    for r in records:
        i, j = r.get("train_task_index"), r["probe_task_index"]
        if i is None or not (0 <= i < n_tasks and 0 <= j < n_tasks):
            continue
        rank = (r["samples"], not r["trace_outputs"])
        if (i, j) not in chosen or rank > chosen[(i, j)]:
            chosen[(i, j)] = rank
            matrix[i, j] = r[key]
    return matrix
