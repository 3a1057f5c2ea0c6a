"""What several commands share: how a user's mistake ends the command, reading --config files and
KEY=VALUE overrides, loading --plugin modules and checking --track.

A user's mistake (a bad flag, file or run directory) ends with one message and exit code 2; a bug
keeps its traceback. Commands catch only the error types that mean a mistake.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import click
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from sphere_rl.continual.rundir import FULL_DISK_ERRNOS, RunFileError, is_storage_error, read_json

err_console = Console(stderr=True, soft_wrap=True)  # a message stays one line in logs


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code`` (2: the user's mistake)."""
    err_console.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False)
    raise typer.Exit(code)


class CommandGroup(TyperGroup):
    """The ``sphere`` command group: a full disk or an unwritable path ends any command with one
    line naming the file (exit 1 for a full disk, 2 for a path the user can fix), never a
    traceback. Runs stay resumable (the runner leaves them ``running``), so the same command
    continues once the cause is gone."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OSError as err:
            if not is_storage_error(err):
                raise
            fail(storage_message(err), code=1 if err.errno in FULL_DISK_ERRNOS else 2)


def storage_message(err: OSError) -> str:
    """One line for a full disk or an unwritable path: what, where, and what to do."""
    where = f" writing {err.filename}" if err.filename else ""
    if err.errno in FULL_DISK_ERRNOS:
        hint = "free some space"
    else:
        hint = "make it writable or use another path"
    return (f"{err.strerror or err}{where}; {hint}, then run the same command again"
            " (a run continues from its last checkpoint)")  # fmt: skip


def read_config_file(path: Path) -> dict[str, Any]:
    """The configuration keys in a ``--config`` JSON file; exits 2 naming the file and the
    problem if it cannot be read or does not hold a JSON object."""
    try:
        loaded = json.loads(Path(path).read_text())
    except OSError as err:
        fail(f"cannot read --config {path}: {err.strerror or err}")
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        fail(f"--config {path} is not valid JSON: {err}")
    if not isinstance(loaded, dict):
        kind = {list: "a list", str: "a string"}.get(type(loaded), type(loaded).__name__)
        fail(f'--config {path} must hold a JSON object of configuration keys (e.g. {{"rho": 0.01}}),'
             f" got {kind}")  # fmt: skip
    return loaded


# Room kept below PATH_MAX for what goes inside --out: a run directory's name (one component at
# most) and its files' names (checkpoints/.task_000_end.pt.XXXXXXXX.tmp).
_RUN_PATH_ROOM = 255 + 64


def check_out_dir(out: Path, flag: str = "--out") -> None:
    """Exit 2 if run directories cannot be created under ``out`` (a file, no permission, a name
    longer than the file system allows, or a path leaving no room below PATH_MAX)."""
    out = Path(out)
    _check_path_length(out, flag)
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file" if existing == out else f"cannot be created: {existing} is a file"
        fail(f"{flag} {out} {what}, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        fail(f"{flag} {out}: no permission to write in {existing}")


def print_provenance(console: Console, summary: Any) -> None:
    """The provenance summary of the runs a command read, then a warning per difference
    (``summary``: :class:`sphere_rl.analysis.provenance.ProvenanceSummary`)."""
    for line in summary.lines():
        console.print(f"provenance: {escape(line)}", highlight=False, soft_wrap=True)
    for line in summary.warnings():
        console.print(f"[yellow]warning:[/yellow] {escape(line)}", highlight=False, soft_wrap=True)


def _check_path_length(out: Path, flag: str) -> None:
    """Exit 2 naming the component of ``out`` longer than NAME_MAX, or the length of a path that
    leaves no room for run directories below PATH_MAX (Linux: 255 and 4096 bytes)."""
    existing = Path(out.absolute().anchor)  # the deepest existing directory, found from the top
    for part in out.absolute().parts[1:]:
        if len(os.fsencode(part)) > 255 or not (existing / part).is_dir():
            break  # (a name over 255 bytes makes is_dir raise, not answer)
        existing = existing / part
    name_max = os.pathconf(existing, "PC_NAME_MAX")
    for part in out.parts:
        if len(os.fsencode(part)) > name_max:
            fail(f"{flag}: the name {part[:40]}... is {len(os.fsencode(part))} bytes long; this"
                 f" file system allows at most {name_max} bytes per name")  # fmt: skip
    path_max = os.pathconf(existing, "PC_PATH_MAX")
    length = len(os.fsencode(str(out.absolute())))
    if length + _RUN_PATH_ROOM > path_max:
        fail(f"{flag}: the path is {length} bytes long; run directories need it shorter than"
             f" {path_max - _RUN_PATH_ROOM} bytes (PATH_MAX {path_max}); use a shorter path")  # fmt: skip


ASSIGNMENTS_HELP = (
    "Configuration overrides KEY=VALUE (any field of ExperimentConfig, e.g. rho=0.01"
    " hidden=[64,64] norm_obs=false), or a plug-in's own setting <plug-in>.<key>=VALUE (sphere"
    " methods lists them); VALUE is read as JSON where it parses (numbers, booleans,"
    " lists, null), else as a string. They win over every flag and --config."
)


def parse_assignments(items: list[str] | None) -> dict[str, Any]:
    """``["rho=0.01", "tasks=reach-v3,push-v3"]`` → ``{"rho": 0.01, "tasks": "reach-v3,push-v3"}``:
    each value parsed as JSON where possible, else kept as a string. Keys and values are checked
    later, with the rest of the configuration (``build_config``); a malformed item exits 2."""
    parsed: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or key.startswith("-"):
            fail(f"{item!r} is neither an option nor KEY=VALUE (e.g. rho=0.01)")
        if key in parsed:
            fail(f"{key} is given twice ({key}={json.dumps(parsed[key])} and {item}); give it once")
        try:
            parsed[key] = json.loads(text)
        except json.JSONDecodeError:
            parsed[key] = text
    return parsed


def check_tracker_or_fail(track: str) -> None:
    """Exit 2 with one line if ``--track`` names no tracker or its package is not installed."""
    from sphere_rl.continual.tracking import TrackerUnavailable, check_tracker

    try:
        check_tracker(track)
    except (TrackerUnavailable, ValueError) as err:
        fail(str(err))


def load_plugins_or_fail(specs: list[str] | None) -> list[ModuleType]:
    """Import the ``--plugin`` modules; a missing or broken one is a user error (exit 2)."""
    from sphere_rl.plugins import PluginError, load_plugins

    try:
        return load_plugins(specs or [])
    except PluginError as err:
        fail(str(err))


def load_run_plugins_or_fail(specs: list[str] | None, run_dir: Path) -> list[ModuleType]:
    """The ``--plugin`` modules if any are given, else the plug-ins ``run_dir`` recorded in its
    run.json, checked to be where they were with the same bytes (exit 2 saying what changed)."""
    from sphere_rl.plugins import PluginError, load_recorded_plugins

    if specs:
        return load_plugins_or_fail(specs)
    try:
        run_info = read_json(run_dir / "run.json")
    except RunFileError:  # not a run, or damaged: the caller says so
        return []
    try:
        records = run_info.get("plugins", []) if isinstance(run_info, dict) else []
        return load_recorded_plugins(records, run_dir)
    except PluginError as err:
        fail(str(err))
