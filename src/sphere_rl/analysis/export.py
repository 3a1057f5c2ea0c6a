"""Tidy data: every evaluation of every run as one row of a :class:`pandas.DataFrame`.

One row per run × evaluation × evaluated task, so any plot or statistic is a ``groupby`` away::

    from sphere_rl.analysis.export import runs_frame
    df = runs_frame(["runs/"])
    df[df.eval_kind == "task_end"].groupby(["method", "protocol"]).success.mean()

Columns: :data:`RUN_COLUMNS`, :data:`EVAL_COLUMNS`, then one column per configuration key whose
value differs between the exported runs (keys equal in every run say nothing about a row).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sphere_rl.analysis.runs import RunData, RunLoadError, find_runs
from sphere_rl.config import config_hash

RUN_COLUMNS = ("run", "config_hash", "method", "protocol", "seed", "sequence", "state")
EVAL_COLUMNS = ("eval_kind", "step", "train_task_index", "train_task", "eval_task_index",
                "eval_task", "success", "return", "episodes")  # fmt: skip
FORMATS = ("csv", "parquet")


def load_runs(paths: Iterable[Path], unreadable: list[RunLoadError] | None = None) -> list[RunData]:
    """Every run directory at or under each of ``paths``, in order, each run once.

    Raises:
        FileNotFoundError: for a path that does not exist.
    """
    runs: dict[Path, RunData] = {}
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist")
        for run in find_runs(path, unreadable):
            runs.setdefault(run.path.resolve(), run)
    return list(runs.values())


def differing_config_keys(configs: Sequence[dict[str, Any]]) -> list[str]:
    """Sorted configuration keys whose value is not the same in every config (a missing key
    counts as ``None``)."""
    keys = sorted(set().union(*configs)) if configs else []
    return [k for k in keys if len({repr(c.get(k)) for c in configs}) > 1]


def runs_frame(paths: Iterable[Path]) -> pd.DataFrame:
    """The evaluations of every run found at or under ``paths`` (run directories, or folders
    searched recursively), as a tidy frame with one row per run × evaluation × evaluated task.

    Rows are ordered by run (as found), then as logged. Unreadable runs raise
    :class:`~sphere_rl.analysis.runs.RunLoadError`; use :func:`load_runs` with a list to skip them
    and pass the runs to :func:`frame_of_runs`.
    """
    return frame_of_runs(load_runs(paths))


def frame_of_runs(runs: Sequence[RunData]) -> pd.DataFrame:
    """:func:`runs_frame` for runs already loaded."""
    varying = [k for k in differing_config_keys([r.config for r in runs]) if k not in RUN_COLUMNS]
    rows = []
    for run in runs:
        fixed = {"run": run.name, "config_hash": config_hash(run.config), "method": run.method,
                 "protocol": run.protocol, "seed": run.seed, "sequence": run.sequence,
                 "state": run.state}  # fmt: skip
        config = {k: _cell(run.config.get(k)) for k in varying}
        for r in run.evals:
            evaluation = {c: r.get(c) for c in EVAL_COLUMNS if c != "step"}
            rows.append({**fixed, **evaluation, "step": r["global_step"], **config})
    columns = [*RUN_COLUMNS, *EVAL_COLUMNS, *varying]
    frame = pd.DataFrame(rows, columns=columns)
    for key in varying:  # one type per column (Parquet needs it): mixed text and numbers → text
        kinds = {type(v) for v in frame[key] if v is not None}
        if len(kinds - {int, float}) and len(kinds) > 1:
            frame[key] = [None if v is None else str(v) for v in frame[key]]
    return frame


def _cell(value: Any) -> Any:
    """A configuration value as one cell: lists and tuples become comma-joined text."""
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return value


class MissingDependency(RuntimeError):
    """An optional package a requested output needs is not installed."""


def frame_bytes(frame: pd.DataFrame, fmt: str) -> bytes:
    """``frame`` encoded as CSV (UTF-8, no index) or Parquet.

    Raises:
        ValueError: for another format.
        MissingDependency: Parquet without pyarrow.
    """
    if fmt == "csv":
        return frame.to_csv(index=False).encode()
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise MissingDependency(
                "--format parquet needs pyarrow: pip install 'sphere-rl[parquet]' (or use"
                " --format csv)"
            ) from None
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return buffer.getvalue()
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
