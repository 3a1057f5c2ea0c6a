"""One self-contained HTML page for a report: tables inline, figures embedded as base64 PNGs, so
the file can be opened, archived or mailed on its own, with relative links to every figure file
(PNG, PDF, SVG) and table file (CSV, Markdown, LaTeX) next to it.

Tables never clip horizontally: cells wrap (long run names and error messages break anywhere), so
every column stays visible at 1400 px; a horizontal scrollbar is the fallback only for windows
narrower than a table's unbreakable content.
"""

from __future__ import annotations

import base64
import html

from sphere_rl.analysis.document import Report

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; padding: 0 1em; max-width: 1320px;
       color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.8em; max-width: 100%; }
th, td { border: 1px solid #bbb; padding: 3px 6px; text-align: left; vertical-align: top; }
td.num { white-space: nowrap; } td.long { overflow-wrap: anywhere; min-width: 12em; }
.scroll { overflow-x: auto; max-width: 100%; }
.files { font-size: 0.85em; color: #555; } .files a { margin-right: 0.6em; }
th { background: #eef2f7; } tbody tr:nth-child(even) { background: #f8f8f8; }
caption { caption-side: bottom; text-align: left; color: #555; font-size: 0.9em; padding: 4px; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; }
.partial { background: #fff6e0; padding: 0.2em 1em; border-left: 4px solid #e0a800; }
"""


def render_html(report: Report) -> str:
    """The whole page as one string."""
    tables = {t.name: t for t in report.tables}
    body = [
        "<h1>SPHERE experiment report</h1>",
        f"<p>{report.n_runs} runs from <code>{html.escape(str(report.runs_dir))}</code>,"
        f" generated {html.escape(report.created)}. Finished runs:"
        f" {report.n_runs - len(report.summary.partial)}; partial runs:"
        f" {len(report.summary.partial)} (reported apart, never pooled).</p>",
        _section(tables["summary"], report),
        _section(tables["aggregates"], report),
        _section(tables["differences"], report),
    ]
    if report.summary.notes:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in report.summary.notes)
        body.append(f"<h2>Notes</h2><ul>{items}</ul>")
    body.append("<h2>Figures</h2>")
    for figure in report.figures:
        data = base64.b64encode(figure.path.read_bytes()).decode("ascii")
        body.append(
            f"<figure><h3>{html.escape(figure.title)}</h3>"
            f'<img alt="{html.escape(figure.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(figure.caption)}"
            f" {_links(report, figure.files)}</figcaption></figure>"
        )
    body.append(_section(tables["per_task"], report))
    body.append(_section(tables["runs"], report))
    partial = tables["partial"]
    if partial.rows:
        body.append(f'<div class="partial">{_section(partial, report)}</div>')
    else:
        body.append("<h2>Partial runs</h2><p>None: every run finished.</p>")
    body.append(_section(tables["config_methods"], report))
    body.append(_section(tables["config_common"], report))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>SPHERE experiment report</title>"
        f"<style>{_STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _section(table, report: Report) -> str:
    return (
        f"<h2>{html.escape(table.title)}</h2>\n"
        f'<div class="scroll">{table.to_html()}</div>{_links(report, report.table_files(table))}'
    )


def _links(report: Report, files) -> str:
    """Relative links to a figure's or table's files (they sit next to index.html)."""
    links = "".join(
        f'<a href="{html.escape(path.relative_to(report.out).as_posix())}">'
        f"{html.escape(path.suffix[1:].upper())}</a>"
        for path in files
    )
    return f'<span class="files">Files: {links}</span>'
