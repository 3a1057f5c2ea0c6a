"""Output shared by the commands: ``--json`` documents and tables that stay readable when narrow."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from typing import Any

from rich.table import Table


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


def name_table(title: str | None, name_column: str, columns: list[str]) -> Table:
    """A table whose first column holds names (runs, tasks, methods) that must stay on one line.

    Names never wrap; when the terminal is too narrow the other columns fold first, and a name that
    still does not fit is cut with an ellipsis rather than spread over several lines.
    """
    table = Table(title=title, title_justify="left")
    table.add_column(name_column, no_wrap=True, overflow="ellipsis")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table
