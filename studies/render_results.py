"""Copy the studies' generated tables into docs/results.md.

``docs/results.md`` holds each table a study generated between two markers::

    <!-- generated: docs/studies/mechanism-confirm/tables.md -->
    ... the file's text, verbatim ...
    <!-- end generated -->

Run after a study's analysis (``python studies/render_results.py``); ``tests/test_results_doc.py``
fails when a block differs from its file, or when a table of results.md is outside any block.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results.md"
BLOCK = re.compile(r"(<!-- generated: (?P<path>\S+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)


def blocks(text: str) -> list[tuple[str, str]]:
    """``(path, body)`` of every generated block of ``text``."""
    return [(m["path"], m["body"]) for m in BLOCK.finditer(text)]


def render(text: str, root: Path = ROOT) -> str:
    """``text`` with every generated block's body replaced by its file's current text."""
    return BLOCK.sub(lambda m: m[1] + (root / m["path"]).read_text() + m[4], text)


def main() -> int:
    text = RESULTS.read_text()
    new = render(text)
    RESULTS.write_text(new)
    print(f"{RESULTS}: {len(blocks(new))} generated blocks" + (" (updated)" if new != text else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
