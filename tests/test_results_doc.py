"""docs/results.md publishes only numbers regenerated from committed raw values by committed code:
every table is a generated block equal to its file, and every study's tables are recomputed here
from its raw CSV files (studies/analyse.py --from-raw)."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results.md"
STUDIES = sorted(p.parent for p in (ROOT / "docs" / "studies").glob("*/runs.csv"))


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "studies" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_generated_block_equals_its_file():
    render = _module("render_results")
    text = RESULTS.read_text()
    found = render.blocks(text)
    assert found, "docs/results.md has no generated block"
    for path, body in found:
        assert body == (ROOT / path).read_text(), f"{path}: run studies/render_results.py"


def test_no_table_of_results_md_is_typed_by_hand():
    render = _module("render_results")
    outside = render.BLOCK.sub("", RESULTS.read_text())
    rows = [line for line in outside.splitlines() if line.lstrip().startswith("|")]
    assert rows == [], f"table rows outside generated blocks: {rows[:3]}"


@pytest.mark.parametrize("study", STUDIES, ids=[p.name for p in STUDIES])
def test_tables_are_recomputed_from_the_committed_raw_values(study):
    analyse = _module("analyse")
    stage = json.loads((study / "stage.json").read_text())["stage"]
    tables, summary = analyse.render(stage, study)
    assert tables == (study / "tables.md").read_text()
    assert json.loads(summary) == json.loads((study / "summary.json").read_text())


def test_a_changed_raw_value_changes_the_tables(tmp_path):
    """The recomputation reads the raw values (the test above could not pass vacuously)."""
    if not STUDIES:
        pytest.skip("no study with raw values committed")
    analyse = _module("analyse")
    study = STUDIES[-1]
    stage = json.loads((study / "stage.json").read_text())["stage"]
    for name in ("runs", "diag", "eval"):
        (tmp_path / f"{name}.csv").write_text((study / f"{name}.csv").read_text())
    diag = (tmp_path / "diag.csv").read_text().splitlines()
    cells = diag[1].split(",")
    cells[-1] = repr(float(cells[-1]) + 5.0)
    diag[1] = ",".join(cells)
    (tmp_path / "diag.csv").write_text("\n".join(diag) + "\n")
    changed, _ = analyse.render(stage, tmp_path)
    original, _ = analyse.render(stage, study)
    assert changed.split("\nRuns:")[0] != original.split("\nRuns:")[0]


def test_direction_power_table_is_recomputed_from_its_inputs():
    power = _module("direction_power")
    assert power.render(power.read_inputs()) == (power.HERE / "tables.md").read_text()


def test_seed_sd_recovers_the_spread_behind_a_percentile_interval():
    """The direction power calculation's variance estimate, checked by simulation: the 95%
    percentile-bootstrap interval of a mean of 5 normal values, turned back into a standard
    deviation, recovers the true one on average (within 10%)."""
    import numpy as np

    power = _module("direction_power")
    rng = np.random.default_rng(1)
    estimates = []
    for _ in range(400):
        x = rng.normal(0.4, 0.3, 5)
        boot = x[rng.integers(0, 5, (2000, 5))].mean(axis=1)
        low, high = np.quantile(boot, [0.025, 0.975])
        estimates.append(power.seed_sd(5, low, high))
    # the bootstrap's interval is built from the sample s.d., whose mean is below σ (c4 ≈ 0.94)
    assert np.mean(estimates) == pytest.approx(0.3 * 0.94, rel=0.1)
