"""``sphere report``: tables, figures and an HTML page from a directory of runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sphere_rl.cli.common import fail

console = Console()


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    runs_dir: Annotated[Path, typer.Argument(help="Directory searched (recursively) for runs.")],
    out: Annotated[Path, typer.Option(help="Where the report goes.")] = Path("report"),
    reps: Annotated[int, typer.Option(help="Bootstrap resamples per interval.")] = 10_000,
    formats: Annotated[
        str,
        typer.Option(
            help="Comma-separated figure formats among png, pdf, svg (png is always written:"
            " index.html embeds it)."
        ),
    ] = "png,pdf,svg",
) -> None:
    """Summarise runs (any mix of methods, seeds, protocols): Markdown/CSV/LaTeX tables with 95%
    bootstrap CIs, figures (PNG, PDF, SVG), and one self-contained HTML page (OUT/index.html)."""
    from sphere_rl.analysis.report import build_report, check_formats
    from sphere_rl.analysis.tables import format_cell

    try:
        result = build_report(runs_dir, out, reps=reps, formats=check_formats(formats.split(",")))
    except (FileNotFoundError, ValueError) as err:
        fail(str(err))
    (summary, *_), partial = result.tables, result.summary.partial
    table = Table(title=summary.title)
    for column in summary.columns:
        table.add_column(column.title, overflow="fold")
    for row in summary.rows:
        table.add_row(*[format_cell(value) for value in row])
    console.print(table)
    if partial:
        names = ", ".join(f"{m.run.name} ({m.run.state})" for m in partial)
        console.print(f"[yellow]{len(partial)} partial run(s), reported apart:[/yellow] {names}")
    for problem in result.unreadable:
        console.print(f"[yellow]unreadable run left out:[/yellow] {escape(problem)}",
                      highlight=False, soft_wrap=True)  # fmt: skip
    for note in result.summary.notes:
        console.print(f"note: {note}", highlight=False)
    console.print(f"report: {out / 'index.html'} (tables in {out / 'tables'}, {out / 'report.md'})")
