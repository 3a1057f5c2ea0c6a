"""``sphere demo``: it is the mechanism study's seed 0 (settings kept equal to ``studies/``), and end
to end on a tiny budget both methods train and the table, the run-wide r_e(K) summary and the
figures come out."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sphere_rl.cli.demo import DEMO_CONFIG, DEMO_TASKS

STUDIES = Path(__file__).resolve().parents[2] / "studies"


def _script_default(script: str, variable: str) -> str:
    match = re.search(
        rf"^{variable}=\$\{{{variable}:-(.+)\}}$", (STUDIES / script).read_text(), re.M
    )
    assert match, f"{variable} default not found in studies/{script}"
    return match.group(1)


def test_demo_is_the_mechanism_studys_setting():
    """The demo's runs are seed 0 of the mechanism study's stage 1 (its settings, sequence A,
    budget, and one of the ρ it chooses from), so the demo repeats two runs of a study."""
    study = json.loads((STUDIES / "mechanism.json").read_text())
    assert {key: DEMO_CONFIG.get(key) for key in study} == study
    assert DEMO_TASKS == _script_default("mechanism_select.sh", "TASKS")
    assert DEMO_CONFIG["steps_per_task"] == int(_script_default("mechanism_select.sh", "STEPS"))
    assert DEMO_CONFIG["sphere_mode"] == "grad"
    rhos = [float(r) for r in _script_default("mechanism_select.sh", "RHOS").split(",")]
    assert DEMO_CONFIG["rho"] in rhos


@pytest.mark.slow
def test_demo_prints_the_mechanism_and_writes_its_figures(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "sphere_rl.cli.app", "demo", "--out", str(out),
         "--tasks", "faucet-close-v3,handle-press-side-v3", "--steps-per-task", "8192"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = " ".join(proc.stdout.split())  # rich may wrap long lines
    assert "r_e(K) on the run-wide probe, topk_moe:" in text
    assert "r_e(K) on the run-wide probe, sphere grad ρ=0.01:" in text
    assert "One seed at this budget" in text
    for figure in ("success.png", "plasticity.png", "spectrum.png"):
        assert (out / figure).stat().st_size > 10_000, figure
