"""Table renderings: Markdown and LaTeX show intervals, CSV splits them into numbers, and every
format says when an interval rests on too few seeds to be a confidence interval."""

import csv
import io
import re

from sphere_rl.analysis.bootstrap import Interval
from sphere_rl.analysis.tables import Column, Table, latex_escape


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
                       "success_ci_high": "0.6", "success_n": "3", "success_is_ci": "True"}  # fmt: skip
    assert rows[1]["success"] == ""


def test_html_escapes():
    table = _table()
    table.rows.append(["<b>", None])
    html = table.to_html()
    assert "&lt;b&gt;" in html and "<b>" not in html and html.startswith('<table id="t">')


def test_fewer_than_three_seeds_is_said_not_to_be_a_confidence_interval():
    table = _table()
    assert table.full_caption == ""  # three seeds: a confidence interval, nothing to warn about
    table.rows.append(["two_seeds", Interval(0.3, 0.2, 0.4, 2)])
    table.rows.append(["one_seed", Interval(0.7, 0.7, 0.7, 1)])
    assert "not a 95% confidence interval" in table.full_caption
    assert "single seed" in table.full_caption
    md = table.to_markdown()
    assert "| two_seeds | 0.30 [0.20, 0.40]† |" in md and "| one_seed | 0.70 (n=1) |" in md
    rows = {r["method"]: r for r in csv.DictReader(io.StringIO(table.to_csv()))}
    assert rows["two_seeds"]["success_is_ci"] == "False" and rows["two_seeds"]["success_n"] == "2"
    assert rows["sphere"]["success_is_ci"] == "True"
    for text in (table.to_html(), table.to_latex()):
        assert "not a 95" in text


def test_latex_is_a_booktabs_table_with_escaped_cells():
    table = Table("per_task", "Per task", [Column("method", "method_name"),
                                          Column("success", "avg success")])  # fmt: skip
    table.rows = [["sphere (rho=0.01)", Interval(0.5, 0.4, 0.6, 2)],
                  ["a_b & c%", Interval(float("nan"), 0, 0, 0)]]  # fmt: skip
    tex = table.to_latex()
    lines = tex.splitlines()
    # booktabs rules in order, one tabular, columns: text left, numbers right.
    rules = [line for line in lines if line in ("\\toprule", "\\midrule", "\\bottomrule")]
    assert rules == ["\\toprule", "\\midrule", "\\bottomrule"]
    assert "\\begin{tabular}{lr}" in lines and "\\label{tab:per-task}" in lines
    body = lines[lines.index("\\midrule") + 1 : lines.index("\\bottomrule")]
    assert body == [
        "sphere (rho=0.01) & 0.50 [0.40, 0.60]$^\\dagger$ \\\\",
        "a\\_b \\& c\\% & -- \\\\",
    ]
    assert "method\\_name & avg success \\\\" in lines
    # No unescaped special character is left in any cell or caption.
    caption = next(line for line in lines if line.startswith("\\caption{"))
    assert "not a 95\\% confidence interval" in caption
    for line in [*body, caption]:
        assert not re.search(r"(?<!\\)[_%&#]", line.replace(" & ", " ")), line


def test_latex_escape_roundtrip_of_specials():
    assert latex_escape("r_e(K) ~ 50% {x}") == r"r\_e(K) \textasciitilde{} 50\% \{x\}"
    assert latex_escape("a\\b") == r"a\textbackslash{}b"
