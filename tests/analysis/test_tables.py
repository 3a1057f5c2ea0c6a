"""Table renderings: Markdown shows intervals, CSV splits them into numbers."""

import csv
import io

from sphere_rl.analysis.bootstrap import Interval
from sphere_rl.analysis.tables import Column, Table


def _table() -> Table:
    table = Table("t", "T", [Column("method", "method"), Column("success", "avg success")])
    table.rows = [["sphere", Interval(0.5, 0.4, 0.6, 3)], ["ppo", Interval(float("nan"), 0, 0, 0)]]
    return table


def test_markdown():
    assert _table().to_markdown().splitlines() == [
        "| method | avg success |",
        "|---|---|",
        "| sphere | 0.50 [0.40, 0.60] |",
        "| ppo | — |",
    ]


def test_csv_splits_intervals():
    rows = list(csv.DictReader(io.StringIO(_table().to_csv())))
    assert rows[0] == {"method": "sphere", "success": "0.5", "success_ci_low": "0.4",
                       "success_ci_high": "0.6", "success_n": "3"}  # fmt: skip
    assert rows[1]["success"] == ""


def test_html_escapes():
    table = _table()
    table.rows.append(["<b>", None])
    html = table.to_html()
    assert "&lt;b&gt;" in html and "<b>" not in html and html.startswith('<table id="t">')
