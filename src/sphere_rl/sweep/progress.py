"""Progress of a running sweep, read from the run directories the workers write.

The driver gets no messages from its Ray workers until a run ends, but every run appends one
``train`` record per PPO iteration to its ``metrics.jsonl``; the newest one says where it stands.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sphere_rl.continual.progress import format_duration
from sphere_rl.sweep.plan import PlannedRun

_TAIL_BYTES = 16_384  # a train record is well under 2 kB


def last_train_record(run_dir: Path) -> tuple[dict | None, float]:
    """The newest ``train`` record of ``run_dir/metrics.jsonl`` and the file's mtime
    (``(None, 0.0)`` if there is none yet). Reads only the end of the file."""
    path = Path(run_dir) / "metrics.jsonl"
    try:
        with open(path, "rb") as handle:
            mtime = os.fstat(handle.fileno()).st_mtime
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - _TAIL_BYTES))
            lines = handle.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return None, 0.0
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut by the tail, or one being written
            continue
        if isinstance(record, dict) and record.get("kind") == "train":
            return record, mtime
    return None, mtime


@dataclass
class GridProgress:
    """Counts of a sweep's submitted runs: done, failed, running (wrote metrics since the sweep
    started) and queued, plus the summed steps/s of the running ones."""

    plans: Sequence[PlannedRun]
    started: float = field(default_factory=time.time)
    done: int = 0
    failed: int = 0
    finished_names: set[str] = field(default_factory=set)

    def mark_done(self, name: str, ok: bool) -> None:
        self.finished_names.add(name)
        self.done += 1
        self.failed += 0 if ok else 1

    def line(self) -> str:
        """``grid 3/12 done (1 failed) | 2 running | 7 queued | 1,624 steps/s | 4m10s``."""
        running, sps = 0, 0.0
        for plan in self.plans:
            if plan.name in self.finished_names:
                continue
            record, mtime = last_train_record(plan.run_dir)
            if record is not None and mtime >= self.started:
                running += 1
                sps += float(record.get("sps", 0.0))
        queued = len(self.plans) - self.done - running
        failed = f" ({self.failed} failed)" if self.failed else ""
        elapsed = format_duration(time.time() - self.started)
        return (
            f"grid {self.done}/{len(self.plans)} done{failed} | {running} running | {queued} queued"
            f" | {sps:,.0f} steps/s | {elapsed}"
        )
