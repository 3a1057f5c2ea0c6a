"""``sphere report --json``: the summary table as one JSON document on stdout."""

import json

import pytest
from typer.testing import CliRunner

from sphere_rl.cli.app import _register_all, app

_register_all()


def test_report_json_matches_the_summary_csv(mixed_runs, tmp_path):
    out = tmp_path / "report"
    args = ["report", str(mixed_runs), "--out", str(out), "--reps", "200", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)  # stdout holds the document and nothing else
    assert document["report"] == str(out / "index.html")
    rows = {(r["method"], r["protocol"]): r for r in document["rows"]}
    assert set(rows) == {(m, p) for m in ("ppo", "sphere") for p in ("crl", "rl")}
    assert all(r["seeds"] == 2 for r in rows.values())
    assert [p["state"] for p in document["partial"]] == ["failed"]
    # Same numbers as the CSV the report wrote (mean, CI bounds and seed count per interval).
    csv_lines = (out / "tables" / "summary.csv").read_text().splitlines()
    header = csv_lines[0].split(",")
    for line in csv_lines[1:]:
        cells = dict(zip(header, line.split(","), strict=True))
        row = rows[(cells["method"], cells["protocol"])]
        for key, value in row.items():
            if isinstance(value, dict):  # an interval
                for part, suffix in (("mean", ""), ("low", "_ci_low"), ("high", "_ci_high")):
                    if value[part] is None:
                        assert cells[key + suffix] in ("", "nan")
                    else:
                        assert float(cells[key + suffix]) == pytest.approx(value[part], rel=1e-5)
                assert int(cells[key + "_n"]) == value["n"]
