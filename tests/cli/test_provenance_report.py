"""sphere report and sphere mechanism summarise the provenance of the runs they pool, warn when
it differs, and refuse with --strict (exit 2, one line naming the field and the runs)."""

import json
import shutil

import pytest
from cli_helpers import snapshot
from typer.testing import CliRunner

from sphere_rl.cli.app import _register_all, app

_register_all()


@pytest.fixture
def two_commits(finished_run):
    """The tiny run and a copy of it (seed 1) whose one segment ran on another, dirty commit."""
    other = finished_run.parent / "other"
    shutil.copytree(finished_run, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "seed": 1}))
    # Both runs' commits are set here: the checkout running the tests may itself be dirty.
    for run, git in (
        (finished_run, {"commit": "a" * 40, "dirty": False, "diff_sha256": None}),
        (other, {"commit": "b" * 40, "dirty": True, "diff_sha256": "c" * 64}),
    ):
        info = json.loads((run / "run.json").read_text())
        info["segments"][0]["git"] = git
        (run / "run.json").write_text(json.dumps(info))
    return finished_run.parent


def _flat(text: str) -> str:
    return " ".join(text.split())


def _report(runs, out, *flags):
    args = ["report", str(runs), "--out", str(out), "--reps", "50", "--formats", "png", *flags]
    return CliRunner().invoke(app, args)


def test_report_summarises_and_warns_about_mixed_runs(two_commits, tmp_path):
    result = _report(two_commits, tmp_path / "report")
    assert result.exit_code == 0, result.output
    output = _flat(result.output)
    assert "provenance: commits:" in output
    assert "warning: the runs differ in commits:" in output
    assert "bbbbbbbbbbbb+dirty:cccccccc (other)" in output
    assert "trained from an uncommitted tree: other" in output


def test_report_strict_refuses_mixed_runs_and_writes_nothing(two_commits, tmp_path):
    result = _report(two_commits, tmp_path / "report", "--strict")
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    output = _flat(result.output)
    assert output.startswith("error: --strict refuses to pool these runs: the runs differ in")
    assert "(other)" in output and "(run)" in output
    assert len(lines) <= 2  # one message (rich may fold it once in a narrow terminal)
    assert not (tmp_path / "report").exists()


def test_report_json_carries_the_provenance(two_commits, tmp_path):
    result = _report(two_commits, tmp_path / "report", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["provenance"]["differing"] == ["commit"]
    assert payload["provenance"]["dirty"] == ["other"]


def _with_run_wide_probe(run_dir):
    """Give the run's diagnostics run-wide probe keys (``sphere mechanism`` needs them)."""
    path = run_dir / "metrics.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for r in records:
        if r["kind"] == "diag":
            proxy = r["proxy/effective_rank"]  # the tiny run computes no eNTK: stand in with r_e(A)
            r.update({"fixed/proxy/effective_rank": proxy, "fixed/entk/effective_rank": proxy})
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_mechanism_strict_refuses_unknown_provenance(finished_run, tmp_path):
    _with_run_wide_probe(finished_run)
    info = json.loads((finished_run / "run.json").read_text())
    del info["segments"]  # as an older version wrote it
    (finished_run / "run.json").write_text(json.dumps(info))
    before = snapshot(finished_run)
    args = ["mechanism", str(finished_run.parent), "--out", str(tmp_path / "m"), "--reps", "50"]
    result = CliRunner().invoke(app, [*args, "--strict"])
    assert result.exit_code == 2
    assert "unknown provenance (older run.json): run" in _flat(result.output)
    assert "Traceback" not in result.output and not (tmp_path / "m").exists()
    assert snapshot(finished_run) == before
    plain = CliRunner().invoke(app, args)
    assert plain.exit_code == 0, plain.output
    assert "unknown provenance (older run.json): 1 run(s)" in _flat(plain.output)
