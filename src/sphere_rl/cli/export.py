"""``sphere export``: the evaluations of run directories as one tidy CSV or Parquet file."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from sphere_rl.cli.common import err_console, fail


class ExportFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"


def register(app: typer.Typer) -> None:
    app.command("export")(export)


def export(
    runs: Annotated[
        list[Path], typer.Argument(help="Run directories, or folders searched recursively.")
    ],
    out: Annotated[Path, typer.Option(help="The file written (atomically).")],
    fmt: Annotated[
        ExportFormat | None,
        typer.Option("--format", help="csv or parquet (needs pyarrow); default: from OUT's suffix"),
    ] = None,
) -> None:
    """One row per run × evaluation × evaluated task (run, method, protocol, seed, step, tasks,
    success, return, ...) plus the configuration keys that differ between the runs."""
    from sphere_rl.analysis.export import MissingDependency, frame_bytes, frame_of_runs, load_runs
    from sphere_rl.analysis.runs import RunLoadError
    from sphere_rl.continual.rundir import atomic_write_bytes

    kind = fmt.value if fmt else ("parquet" if out.suffix.lower() == ".parquet" else "csv")
    if out.is_dir():
        fail(f"--out {out} is a directory; give a file name such as {out / f'runs.{kind}'}")
    unreadable: list[RunLoadError] = []
    try:
        loaded = load_runs(runs, unreadable)
    except FileNotFoundError as err:
        fail(str(err))
    for problem in unreadable:
        err_console.print(f"warning: unreadable run left out: {problem}", highlight=False)
    if not loaded:
        fail(f"no run directories (with a config.json) under {', '.join(map(str, runs))}")
    frame = frame_of_runs(loaded)
    try:
        data = frame_bytes(frame, kind)
    except MissingDependency as err:
        fail(str(err))
    try:
        atomic_write_bytes(out, data)
    except OSError as err:
        fail(f"cannot write --out {out}: {err.strerror or err}", code=1)
    print(f"{out}: {len(frame)} rows from {len(loaded)} runs ({kind})")
