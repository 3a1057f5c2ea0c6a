"""Output shared by the commands: ``--json`` documents and tables that stay readable when narrow."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

# Width of tables written to a pipe or a file, where nothing wraps lines for the reader: wide enough
# that run names and descriptions stay on one line, as they would in a wide terminal.
PIPE_WIDTH = 160


def make_console(stderr: bool = False) -> Console:
    """A rich console: the terminal's width on a terminal, ``PIPE_WIDTH`` (or ``COLUMNS``) when
    the output goes to a pipe or a file (rich would assume 80 columns and wrap every table)."""
    console = Console(stderr=stderr)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(stderr=stderr, width=PIPE_WIDTH)
    return console


def _plain(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become ``null`` (strict JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _plain(value.item())
    return value


def print_json(document: Any) -> None:
    """Write ``document`` as strict JSON on stdout, bypassing rich (no wrapping, no colours)."""
    sys.stdout.write(json.dumps(_plain(document), indent=2, allow_nan=False) + "\n")
    sys.stdout.flush()


def name_table(title: str | None, names: str | list[str], columns: list[str]) -> Table:
    """A table whose first column(s) hold names (runs, tasks, methods) that must stay on one line.

    Names never wrap; when the terminal is too narrow the other columns fold first, and a name that
    still does not fit is cut with an ellipsis rather than spread over several lines.
    """
    table = Table(title=title, title_justify="left")
    for name in [names] if isinstance(names, str) else names:
        table.add_column(name, no_wrap=True, overflow="ellipsis")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table
