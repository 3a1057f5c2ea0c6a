"""Progress display for long runs: a rich progress bar on a terminal, plain lines otherwise.

Logs that are not a terminal (CI, ``nohup``, a Ray worker's ``sweep.log``) cannot show a live bar,
so they get one self-contained line every ``interval`` seconds instead, e.g.::

    [cw10-crl-sphere-s0] task 2/10 push-wall-v3 | step 1,245,184/10,000,000 (12.5%) | 812 steps/s | success 0.40 | r_e(K) 31.2 | eta 3h00m
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

# Seconds between two plain progress lines; SPHERE_PROGRESS_INTERVAL overrides it.
DEFAULT_INTERVAL = 60.0


def format_duration(seconds: float) -> str:
    """``4000`` → ``"1h06m"``, ``75`` → ``"1m15s"``, ``9`` → ``"9s"``."""
    seconds = int(max(0.0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def progress_line(name: str, step: int, total: int, fields: dict[str, Any]) -> str:
    """One plain-text progress line (see the module doc for an example)."""
    parts = [f"task {fields['task']}" if fields.get("task") else "starting"]
    percent = 100.0 * step / total if total else 0.0
    parts.append(f"step {step:,}/{total:,} ({percent:.1f}%)")
    sps = float(fields.get("sps") or 0.0)
    parts.append(f"{sps:,.0f} steps/s")
    parts.append(f"success {fields.get('success', '-')}")
    parts.append(f"r_e(K) {fields.get('rank', '-')}")
    if sps > 0 and total > step:
        parts.append(f"eta {format_duration((total - step) / sps)}")
    prefix = f"[{name}] " if name else ""
    return prefix + " | ".join(parts)


class ProgressDisplay:
    """Shows task, steps, steps/s, the last success and r_e(K). Use as a context manager.

    Args:
        total_steps: env steps of the whole run.
        enabled: ``False`` prints nothing at all.
        run_name: prefix of plain lines and label of the bar.
        stream: where to write (default ``sys.stderr``); a live bar only if it is a terminal.
        interval: seconds between plain lines (default ``SPHERE_PROGRESS_INTERVAL`` or 60).
        clock: monotonic time source (tests replace it).
    """

    def __init__(
        self,
        total_steps: int,
        enabled: bool = True,
        run_name: str = "",
        stream: IO[str] | None = None,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = enabled
        self.total = total_steps
        stream = stream if stream is not None else sys.stderr
        self.live = enabled and stream.isatty()
        # A log file has no width: never wrap (or fold) a line there.
        self.console = Console(file=stream, soft_wrap=not self.live)
        self.fields: dict[str, Any] = {"task": "", "sps": 0.0, "success": "-", "rank": "-"}
        self.run_name = run_name
        self.interval = (
            float(os.environ.get("SPHERE_PROGRESS_INTERVAL", DEFAULT_INTERVAL))
            if interval is None
            else interval
        )
        self.clock = clock
        self.step = 0
        self._last_line: float | None = None  # clock value of the last plain line
        self._line_step = -1  # step of the last plain line
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
        elif self._plain and self._line_step != self.step and self._last_line is not None:
            self._print_line()  # where the run stopped, finished or not

    @property
    def _plain(self) -> bool:
        return self.enabled and not self.live

    def update(self, global_step: int, **fields: Any) -> None:
        self.fields.update({k: v for k, v in fields.items() if v is not None})
        self.step = global_step
        if self._progress is not None:
            self._progress.update(self._bar, completed=global_step, **self.fields)
        elif self._plain:
            now = self.clock()
            if self._last_line is None or now - self._last_line >= self.interval:
                self._print_line()

    def _print_line(self) -> None:
        self._last_line, self._line_step = self.clock(), self.step
        line = progress_line(self.run_name, self.step, self.total, self.fields)
        self.console.print(line, markup=False, highlight=False)

    def message(self, text: str) -> None:
        """An event worth a line of its own (evaluations, task ends)."""
        if self.enabled:
            self.console.print(text, highlight=False)
