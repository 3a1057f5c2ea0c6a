"""The mechanism study's analysis: Pearson r against scipy, variant labels, per-variant spectra
against hand-computed seed statistics, and the CLI on synthetic run directories."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats
from synthetic_runs import CRL_CURVES, CRL_MATRIX, write_run
from typer.testing import CliRunner

from sphere_rl.analysis.mechanism import (
    FIXED,
    PROXY,
    RANK,
    pearson,
    proxy_correlation,
    spectrum_summary,
    variant_label,
)
from sphere_rl.analysis.runs import find_runs
from sphere_rl.cli.app import _register_all, app


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pearson_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=40)
    y = 0.7 * x + rng.normal(size=40)
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)


def test_pearson_undefined_cases():
    assert np.isnan(pearson([1.0, 2.0], [3.0, 4.0]))  # too few points
    assert np.isnan(pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))  # constant sample
    with pytest.raises(ValueError, match="equal length"):
        pearson([1.0, 2.0, 3.0], [1.0, 2.0])


def test_variant_labels_separate_sphere_strengths():
    base = {"method": "sphere", "reg": None, "sphere_mode": "grad", "rho": 0.01}
    assert variant_label(base) == "sphere grad ρ=0.01"
    assert variant_label({**base, "sphere_mode": "loss", "rho": 0.05}) == "sphere loss ρ=0.05"
    assert variant_label({**base, "method": "topk_moe"}) == "topk_moe"
    assert variant_label({**base, "method": "ppo", "reg": "cbp"}) == "ppo +cbp"


def _fixed_runs(root, ranks_by_seed, method="topk_moe", extra=None):
    for seed, ranks in enumerate(ranks_by_seed):
        run = write_run(root, method=method, seed=seed, matrix=CRL_MATRIX, curves=CRL_CURVES,
                        ranks=ranks, extra=extra)  # fmt: skip
        lines = (run / "metrics.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines]
        for r in records:  # the run-wide probe: a rank one higher than the task probe's
            if r["kind"] == "diag":
                r[FIXED + RANK] = r[RANK] + 1.0
                r[FIXED + PROXY] = r[PROXY] + 0.5
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_spectrum_summary_against_seed_statistics(tmp_path):
    ranks = [[10, 9, 8, 7, 6, 5], [12, 10, 8, 9, 7, 4], [11, 11, 6, 6, 6, 6]]
    _fixed_runs(tmp_path, ranks)
    (summary,) = spectrum_summary(find_runs(tmp_path), FIXED + RANK, reps=200)
    fixed = np.asarray(ranks, float) + 1.0
    assert summary.label == "topk_moe" and summary.seeds == 3
    assert summary.initial.mean == pytest.approx(fixed[:, 0].mean())
    assert summary.final.mean == pytest.approx(fixed[:, -1].mean())
    assert summary.minimum.mean == pytest.approx(fixed.min(1).mean())
    assert summary.change.mean == pytest.approx((fixed[:, -1] - fixed[:, 0]).mean())
    assert summary.minimum.low <= summary.minimum.mean <= summary.minimum.high


def test_proxy_correlation_pools_both_probes(tmp_path):
    ranks = [[10, 9, 8, 7, 6, 5], [12, 10, 8, 9, 7, 4]]
    _fixed_runs(tmp_path, ranks)
    corr = proxy_correlation(find_runs(tmp_path))
    task = np.concatenate([np.asarray(r, float) for r in ranks])
    proxy = np.concatenate([task / 2, task / 2 + 0.5])
    rank = np.concatenate([task, task + 1.0])
    assert corr.n == 2 * task.size
    assert corr.r == pytest.approx(stats.pearsonr(proxy, rank).statistic)


def test_mechanism_cli_writes_tables_and_figures(tmp_path):
    _fixed_runs(tmp_path / "runs", [[10, 9, 8, 7, 6, 5], [12, 10, 8, 9, 7, 4]])
    _fixed_runs(tmp_path / "runs" / "s", [[10, 10, 10, 11, 11, 11], [9, 9, 10, 10, 11, 11]],
                method="sphere", extra={"rho": 0.1})  # fmt: skip
    _register_all()
    out = tmp_path / "mech"
    result = CliRunner().invoke(app, ["mechanism", str(tmp_path / "runs"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads((out / "mechanism.json").read_text())
    labels = {row["variant"] for row in payload[FIXED + RANK]}
    assert labels == {"topk_moe", "sphere grad ρ=0.1"}
    assert "seeds: the bracket is the bootstrap spread" in (out / "mechanism.md").read_text()
    for name in ("spectrum.png", "spectrum.svg", "proxy_vs_entk.png", "proxy_vs_entk.svg"):
        assert (out / name).stat().st_size > 1000


def test_mechanism_cli_rejects_a_missing_directory(tmp_path):
    _register_all()
    result = CliRunner().invoke(app, ["mechanism", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "is not a directory of runs" in result.output


def test_mechanism_cli_lists_an_unreadable_run_and_analyses_the_others(tmp_path):
    _fixed_runs(tmp_path / "runs", [[10, 9, 8, 7, 6, 5], [12, 10, 8, 9, 7, 4]])
    damaged = sorted((tmp_path / "runs").iterdir())[0]
    (damaged / "config.json").write_text("{not json")
    _register_all()
    out = tmp_path / "mech"
    result = CliRunner().invoke(app, ["mechanism", str(tmp_path / "runs"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"unreadable run left out: {damaged / 'config.json'}" in result.output
    (row,) = json.loads((out / "mechanism.json").read_text())[FIXED + RANK]
    assert row["seeds"] == 1
