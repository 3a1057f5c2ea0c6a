"""``sphere report`` end to end on synthetic run directories."""

import csv
import re

from sphere_rl.analysis.report import build_report


def test_report_writes_tables_figures_and_a_self_contained_page(mixed_runs, tmp_path):
    out = tmp_path / "report"
    report = build_report(mixed_runs, out, reps=500)
    rows = list(csv.DictReader(open(out / "tables/summary.csv")))
    assert [(r["method"], r["protocol"], r["seeds"]) for r in rows] == [
        ("ppo", "crl", "2"), ("ppo", "rl", "2"), ("sphere", "crl", "2"), ("sphere", "rl", "2")
    ]  # fmt: skip
    crl = rows[2]
    for key in ("average_success", "forgetting", "forward_transfer", "rank_final", "rank_min"):
        assert float(crl[f"{key}_ci_low"]) <= float(crl[key]) <= float(crl[f"{key}_ci_high"])
    assert rows[1]["forgetting"] == ""  # not defined for RL
    # Partial runs: flagged in the runs table and listed apart, not in the summary.
    runs = list(csv.DictReader(open(out / "tables/runs.csv")))
    assert sum(r["partial"] == "True" for r in runs) == 1 and len(runs) == 9
    (partial,) = csv.DictReader(open(out / "tables/partial.csv"))
    assert partial["state"] == "failed" and partial["tasks_done"] == "1/3"
    names = sorted(f.path.name for f in report.figures)
    assert names == [
        "plasticity_reach-v3-push-v3-window-close-v3_crl.png",
        "plasticity_reach-v3-push-v3-window-close-v3_rl.png",
        "rl_vs_crl_reach-v3-push-v3-window-close-v3.png",
        "routing_reach-v3-push-v3-window-close-v3_crl.png",
        "routing_reach-v3-push-v3-window-close-v3_rl.png",
        "success_reach-v3-push-v3-window-close-v3_crl.png",
        "success_reach-v3-push-v3-window-close-v3_rl.png",
    ]
    assert all(f.path.stat().st_size > 5_000 for f in report.figures)
    page = (out / "index.html").read_text()
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 7 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "Partial runs (not in the summary)" in page
    markdown = (out / "report.md").read_text()
    assert "| sequence | method | protocol | seeds | avg success |" in markdown
    assert "figures/rl_vs_crl_reach-v3-push-v3-window-close-v3.png" in markdown


def test_report_command(mixed_runs, tmp_path):
    from typer.testing import CliRunner

    from sphere_rl.cli.app import _register_all, app

    _register_all()
    out = tmp_path / "report"
    result = CliRunner().invoke(
        app, ["report", str(mixed_runs), "--out", str(out), "--reps", "200"], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    assert "1 partial run(s), reported apart" in result.output and "crl-sphere-s2" in result.output
    assert (out / "index.html").is_file() and (out / "tables/summary.csv").is_file()
    empty = CliRunner().invoke(app, ["report", str(tmp_path / "nothing")])
    assert empty.exit_code == 2 and "no run directories" in empty.output
