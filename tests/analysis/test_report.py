"""``sphere report`` end to end on synthetic run directories."""

import csv
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from synthetic_runs import TASKS

from sphere_rl.analysis.entk_results import read_entk_records, save_entk_records
from sphere_rl.analysis.report import build_report, entk_panels


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs.append(dict(attrs)["href"])


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
    for figure in report.figures:  # every figure in every format, non-trivial
        assert [p.suffix for p in figure.files] == [".png", ".pdf", ".svg"]
        assert all(p.stat().st_size > 5_000 for p in figure.files)
    page = (out / "index.html").read_text()
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 7 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "Partial runs (not in the summary)" in page
    # Links to every figure and table file, and nothing else, all resolving.
    parser = _Links()
    parser.feed(page)
    on_disk = {p.relative_to(out).as_posix() for d in ("figures", "tables")
               for p in (out / d).iterdir()}  # fmt: skip
    assert set(parser.hrefs) == on_disk and len(on_disk) == 7 * 3 + 8 * 3
    markdown = (out / "report.md").read_text()
    assert "| sequence | method | protocol | seeds | avg success |" in markdown
    assert "figures/rl_vs_crl_reach-v3-push-v3-window-close-v3.png" in markdown
    assert "(figures/rl_vs_crl_reach-v3-push-v3-window-close-v3.pdf)" in markdown
    # Per-task table: every quantity with its interval; two seeds: flagged as not a CI.
    per_task = list(csv.DictReader(open(out / "tables/per_task.csv")))
    assert len(per_task) == 4 * 3
    row = per_task[6]  # sphere, CRL, task 0
    assert (row["method"], row["protocol"], row["task"]) == ("sphere", "crl", "reach-v3")
    assert float(row["own_end_success_ci_low"]) <= float(row["own_end_success"])
    # The default t-interval is a confidence interval from two seeds on (exact for normal data).
    assert row["own_end_success_n"] == "2" and row["own_end_success_is_ci"] == "True"
    own = [float(r["own_end_success"]) for r in per_task[6:9]]
    summary_mean = float(rows[2]["average_success"])
    assert np.mean(own) == pytest.approx(summary_mean)  # per-task means average to the summary
    tex = (out / "tables/per_task.tex").read_text()
    assert "\\toprule" in tex and "95\\% t-interval" in tex
    # Configurations: shared settings once, and what each method sets differently.
    common = {r["key"]: r["value"] for r in csv.DictReader(open(out / "tables/config_common.csv"))}
    assert common["steps_per_task"] == "400" and "seed" not in common
    methods = list(csv.DictReader(open(out / "tables/config_methods.csv")))
    assert [(r["method"], r["protocols"], r["seeds"]) for r in methods] == [
        ("ppo", "crl, rl", "0, 1"), ("sphere", "crl, rl", "0, 1, 2")
    ]  # fmt: skip
    assert [(r["architecture"], r["plugins"]) for r in methods] == [
        ("mlp", "none"), ("topk_moe", "sphere")
    ]  # fmt: skip
    assert "Hyperparameters per method" in page and "Configuration shared by all runs" in page


def test_entk_matrix_figure_from_entk_json(mixed_runs, tmp_path):
    sphere_crl = sorted(p for p in mixed_runs.iterdir() if p.name.startswith("crl-sphere-s")
                        and p.name != "crl-sphere-s2")  # fmt: skip
    for k, run_dir in enumerate(sphere_crl):
        records = [{"checkpoint": f"task_{i:03d}_end", "probe_task_index": j, "probe_task": "x",
                    "samples": 8, "trace_outputs": False, "entk_rank": 10.0 * i + j + k,
                    "proxy_rank": 1.0} for i in range(3) for j in range(3) if (i, j) != (0, 2)]  # fmt: skip
        save_entk_records(run_dir, records[:4])
        save_entk_records(run_dir, records[3:])  # merged, not replaced
        assert len(read_entk_records(run_dir)) == 8
    report = build_report(mixed_runs, tmp_path / "report", reps=100, formats=["png"])
    (figure,) = [f for f in report.figures if f.path.name.startswith("entk_matrix_")]
    assert figure.path.name == "entk_matrix_reach-v3-push-v3-window-close-v3_crl.png"
    assert figure.files == (figure.path,)
    exps = [e for e in report.summary.experiments if e.protocol == "crl"]
    ((title, tasks, matrix),) = entk_panels(exps)
    expected = 10.0 * np.arange(3)[:, None] + np.arange(3)[None, :] + 0.5  # mean over k = 0, 1
    expected[0, 2] = np.nan
    np.testing.assert_allclose(matrix, expected)
    assert title == "sphere: CRL (2 seeds)" and tasks == list(TASKS)


def test_report_command(mixed_runs, tmp_path):
    from typer.testing import CliRunner

    from sphere_rl.cli.app import _register_all, app

    _register_all()
    out = tmp_path / "report"
    result = CliRunner().invoke(
        app,
        ["report", str(mixed_runs), "--out", str(out), "--reps", "200", "--formats", "png"],
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    assert "1 partial run(s), reported apart" in result.output and "crl-sphere-s2" in result.output
    assert (out / "index.html").is_file() and (out / "tables/summary.csv").is_file()
    empty = CliRunner().invoke(app, ["report", str(tmp_path / "nothing")])
    assert empty.exit_code == 2 and "no run directories" in empty.output
    bad = CliRunner().invoke(app, ["report", str(mixed_runs), "--formats", "png,bmp"])
    assert bad.exit_code == 2 and "unknown figure format(s) bmp" in bad.output
    assert "Traceback" not in bad.output
