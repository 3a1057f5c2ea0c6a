"""``sphere report``: tables, figures and an HTML page from a directory of runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from sphere_rl.cli.common import fail
from sphere_rl.cli.output import make_console, name_table, print_json

console = make_console()


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
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print the summary table as JSON on stdout (and nothing else there)."
        ),
    ] = False,
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
    if as_json:
        print_json({
            "report": str(out / "index.html"), "title": summary.title,
            "rows": [{c.key: v for c, v in zip(summary.columns, row, strict=True)}
                     for row in summary.rows],
            "partial": [{"run": m.run.name, "state": m.run.state} for m in partial],
            "notes": list(result.summary.notes),
            "unreadable": list(result.unreadable),
        })  # fmt: skip
        return
    # Sequence and method label are names; the numbers may fold.
    titles = [c.title for c in summary.columns]
    table = name_table(summary.title, titles[:2], titles[2:])
    for row in summary.rows:
        table.add_row(*[format_cell(value) for value in row])
    console.print(table)
    if partial:
        names = ", ".join(f"{m.run.name} ({_state(m.run)})" for m in partial)
        console.print(f"[yellow]{len(partial)} partial run(s), reported apart:[/yellow] {names}")
    for problem in result.unreadable:
        console.print(f"[yellow]unreadable run left out:[/yellow] {escape(problem)}",
                      highlight=False, soft_wrap=True)  # fmt: skip
    for note in result.summary.notes:
        console.print(f"note: {note}", highlight=False)
    console.print(f"report: {out / 'index.html'} (tables in {out / 'tables'}, {out / 'report.md'})")


def _state(run) -> str:
    """``interrupted by SIGTERM at step 40,000``, or the state alone."""
    if run.state == "interrupted":
        return f"{run.status.get('error')} at step {run.status.get('global_step', 0):,}"
    return run.state
