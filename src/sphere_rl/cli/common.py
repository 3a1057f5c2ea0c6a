"""What every command shares: how a user's mistake ends the command, and reading --config files.

A user's mistake (a bad flag, file or run directory) ends with one message and exit code 2; a bug
keeps its traceback. Commands catch only the error types that mean a mistake.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

err_console = Console(stderr=True, soft_wrap=True)  # a message stays one line in logs


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code`` (2: the user's mistake)."""
    err_console.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False)
    raise typer.Exit(code)


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


def check_out_dir(out: Path, flag: str = "--out") -> None:
    """Exit 2 if run directories cannot be created under ``out`` (a file, or no permission)."""
    out = Path(out)
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file" if existing == out else f"cannot be created: {existing} is a file"
        fail(f"{flag} {out} {what}, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        fail(f"{flag} {out}: no permission to write in {existing}")


ASSIGNMENTS_HELP = (
    "Configuration overrides KEY=VALUE (any field of ExperimentConfig, e.g. rho=0.01"
    " hidden=[64,64] norm_obs=false); VALUE is read as JSON where it parses (numbers, booleans,"
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
