"""Crash-safe files of a run directory.

Every whole-file write goes to a temporary file in the same directory, is fsync'ed, then renamed
over the target (``os.replace`` is atomic on POSIX), so a kill leaves either the old or the new
file. The metrics log is append-only JSON lines, flushed and fsync'ed per record; a kill can at
worst leave a partial last line, which readers skip and :meth:`JsonlLog.truncate_after` removes
when a run resumes.

Layout of a run directory::

    config.json          resolved configuration (what --resume compares against)
    run.json             resolved task sequence, method parts, package version
    status.json          state (running / finished / failed), position, error message
    metrics.jsonl        one record per log step: kind "train", "eval" or "diag"
    eval.csv             every evaluation (regenerated from metrics.jsonl)
    tb/                  TensorBoard events
    checkpoints/latest.pt, checkpoints/task_XXX_end.pt
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

EVAL_COLUMNS = (
    "global_step",
    "kind",
    "train_task_index",
    "train_task",
    "eval_task_index",
    "eval_task",
    "success",
    "return",
    "episodes",
)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All complete records; a torn last line (from a kill mid-write) is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


class JsonlLog:
    """Append-only JSON-lines log with per-record fsync."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True, allow_nan=True) + "\n"
        with open(self.path, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def truncate_after(self, global_step: int) -> list[dict[str, Any]]:
        """Drop records logged after ``global_step`` (work a resumed run will redo); returns the
        records kept."""
        kept = [r for r in read_jsonl(self.path) if r.get("global_step", 0) <= global_step]
        atomic_write_bytes(
            self.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept).encode()
        )
        return kept


def write_eval_csv(path: Path, eval_records: Iterable[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EVAL_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for record in eval_records:
        writer.writerow(record)
    atomic_write_bytes(path, buffer.getvalue().encode())
