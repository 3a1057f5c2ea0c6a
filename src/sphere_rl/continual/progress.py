"""Live progress display for long runs: a rich progress bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class ProgressDisplay:
    """Shows task, steps, steps/s, the last success and r_e(K). Use as a context manager."""

    def __init__(self, total_steps: int, enabled: bool = True, run_name: str = "") -> None:
        self.enabled = enabled
        self.total = total_steps
        self.console = Console(stderr=True)
        self.live = enabled and sys.stderr.isatty()
        self.fields: dict[str, Any] = {"task": "", "sps": 0.0, "success": "-", "rank": "-"}
        self.run_name = run_name
        self._progress: Progress | None = None

    def __enter__(self) -> ProgressDisplay:
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]{task.fields[task]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[sps]:.0f} steps/s"),
                TextColumn("success {task.fields[success]}"),
                TextColumn("r_e(K) {task.fields[rank]}"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._progress.__enter__()
            self._bar = self._progress.add_task(self.run_name, total=self.total, **self.fields)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def update(self, global_step: int, **fields: Any) -> None:
        self.fields.update({k: v for k, v in fields.items() if v is not None})
        if self._progress is not None:
            self._progress.update(self._bar, completed=global_step, **self.fields)

    def message(self, text: str) -> None:
        """An event worth a line of its own (evaluations, task ends)."""
        if self.enabled:
            self.console.print(text, highlight=False)
