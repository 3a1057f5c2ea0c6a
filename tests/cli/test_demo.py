"""``sphere demo`` end to end on a tiny budget: both methods train, the table, the run-wide r_e(K)
summary and the figures come out."""

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_prints_the_mechanism_and_writes_its_figures(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "sphere_rl.cli.app", "demo", "--out", str(out),
         "--tasks", "faucet-close-v3,handle-press-side-v3", "--steps-per-task", "2000"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = " ".join(proc.stdout.split())  # rich may wrap long lines
    assert "r_e(K) on the run-wide probe, topk_moe:" in text
    assert "r_e(K) on the run-wide probe, sphere grad ρ=0.01:" in text
    assert "One seed at this budget" in text
    for figure in ("success.png", "plasticity.png", "spectrum.png"):
        assert (out / figure).stat().st_size > 10_000, figure
