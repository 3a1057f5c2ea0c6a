"""``sphere report``: tables, figures and an HTML page from a directory of runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from sphere_rl.cli.common import fail, print_provenance
from sphere_rl.cli.output import make_console, name_table, print_json

if TYPE_CHECKING:
    from sphere_rl.analysis.tables import Table

console = make_console()


def print_table(table: Table, names: int) -> None:
    """``table`` on the terminal (its first ``names`` columns never wrap) and, under it, the
    caption lines a reader needs for its brackets (single seeds, ``†``)."""
    from sphere_rl.analysis.tables import format_cell

    titles = [c.title for c in table.columns]
    out = name_table(table.title, titles[:names], titles[names:])
    for row in table.rows:
        out.add_row(*[format_cell(value) for value in row])
    console.print(out)
    for note in table.interval_notes():
        console.print(note, highlight=False)


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
    interval: Annotated[
        str,
        typer.Option(
            help="Interval of a mean over seeds: t (Student-t, the default: holds its 95% coverage"
            " at 3-10 seeds), bca (BCa bootstrap) or percentile (rliable's percentile bootstrap;"
            " under-covers at few seeds)."
        ),
    ] = "t",
    reference: Annotated[
        str,
        typer.Option(
            help="Method label every other method is compared with (differences table,"
            " P(improvement))."
        ),
    ] = "topk_moe",
    test: Annotated[
        str,
        typer.Option(
            help="p-value of a difference: welch (Welch's t-test) or permutation (exact when few"
            " seeds)."
        ),
    ] = "welch",
    latex_width: Annotated[
        str,
        typer.Option(
            help="Width the LaTeX tables fit: column (\\columnwidth, a table float) or text"
            " (\\textwidth, table*)."
        ),
    ] = "column",
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print the summary table as JSON on stdout (and nothing else there)."
        ),
    ] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Refuse (exit 2) runs that differ in commit, packages, CPU capability or"
            " learner threads, or were trained from an uncommitted tree, with torch_threads > 1,"
            " or have unknown provenance.",
        ),
    ] = False,
) -> None:
    """Summarise runs (any mix of methods, seeds, protocols): Markdown/CSV/LaTeX tables with 95%
    intervals over seeds, aggregates over tasks × seeds, differences against a reference method,
    figures (PNG, PDF, SVG), raw values (OUT/raw.csv) and one self-contained HTML page
    (OUT/index.html)."""
    from sphere_rl.analysis.differences import check_test
    from sphere_rl.analysis.intervals import check_method
    from sphere_rl.analysis.report import build_report, check_formats

    if reps < 1:
        fail(f"--reps must be >= 1 (bootstrap resamples per interval), got {reps}")
    try:
        result = build_report(runs_dir, out, reps=reps, formats=check_formats(formats.split(",")),
                              interval=check_method(interval), reference=reference,
                              test=check_test(test), strict=strict,
                              latex_width=latex_width)  # fmt: skip
    except (FileNotFoundError, ValueError) as err:
        fail(str(err))
    summary, partial = result.tables[0], result.summary.partial
    differences = next(t for t in result.tables if t.name == "differences")
    if as_json:
        print_json({
            "report": str(out / "index.html"), "title": summary.title,
            "rows": [{c.key: v for c, v in zip(summary.columns, row, strict=True)}
                     for row in summary.rows],
            "partial": [{"run": m.run.name, "state": m.run.state} for m in partial],
            "notes": list(result.summary.notes),
            "unreadable": list(result.unreadable),
            "provenance": result.provenance.to_dict(),
        })  # fmt: skip
        return
    print_table(summary, 2)
    if differences.rows:
        print_table(differences, 3)
    else:
        console.print(f"no differences: no finished {reference} runs on the same sequence and"
                      " protocol (--reference names the method to compare with)", highlight=False)  # fmt: skip
    if partial:
        names = ", ".join(f"{m.run.name} ({_state(m.run)})" for m in partial)
        console.print(f"[yellow]{len(partial)} partial run(s), reported apart:[/yellow] {names}")
    for problem in result.unreadable:
        console.print(f"[yellow]unreadable run left out:[/yellow] {escape(problem)}",
                      highlight=False, soft_wrap=True)  # fmt: skip
    print_provenance(console, result.provenance)
    for note in result.summary.notes:
        console.print(f"note: {note}", highlight=False)
    console.print(f"report: {out / 'index.html'} (tables in {out / 'tables'}, {out / 'report.md'})")


def _state(run) -> str:
    """``interrupted by SIGTERM at step 40,000``, or the state alone."""
    if run.state == "interrupted":
        return f"{run.status.get('error')} at step {run.status.get('global_step', 0):,}"
    return run.state
