"""The learner benchmark runs and prints its ratios (numbers are the benchmark's business, not a
test's: only that each row has them, parseable and positive)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
RATIO = r"(\d+\.\d+)x"


@pytest.mark.slow
def test_training_throughput_prints_speed_up_and_ceiling():
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "training_throughput.py"), "--skip-training",
         "--presets", "cw10", "--batches", "32,64", "--threads", "1", "--repeats", "1"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("cw10 batch")]
    assert [row.split(",")[0] for row in rows] == ["cw10 batch 32", "cw10 batch 64"], result.stdout
    for row in rows:
        speed_up = re.search(rf"speed-up {RATIO} \(CPU {RATIO}; bound {RATIO}\)", row)
        assert speed_up and all(float(v) > 0 for v in speed_up.groups()), row


def _cpu_cost():
    import importlib.util

    spec = importlib.util.spec_from_file_location("cpu_cost", BENCHMARKS / "cpu_cost.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_cost_estimates_follow_the_documented_rule():
    """docs/reproduce.md's estimate, by hand: a CW10 CRL run of `cbp` (costed as `ppo`) is 10M
    steps at ppo's rate plus 3.3M evaluation steps at the mean simulator rate; HB adds 1 h."""
    cost = _cpu_cost()
    rows = [
        {"benchmark": b, "method": m, "steps_per_cpu_s": rate, "sim_steps_per_cpu_s": sim}
        for b, sim0 in (("cw10", 2000.0), ("hb", 1500.0))
        for (m, rate), sim in zip(
            (("ppo", 1000.0), ("ppo10x", 400.0), ("topk_moe", 800.0), ("sphere", 700.0)),
            (sim0, sim0 + 100, sim0 + 200, sim0 + 300),
            strict=True,
        )
    ]
    cw10_sim = (2000 + 2100 + 2200 + 2300) / 4
    expected = (10e6 / 1000.0 + 3.3e6 / cw10_sim) / 3600
    assert cost.core_hours(rows, "cw10", "cbp", "crl") == pytest.approx(expected)
    hb_sim = (1500 + 1600 + 1700 + 1800) / 4
    expected = (50e6 / 800.0 + 5e6 / hb_sim) / 3600 + 1.0
    assert cost.core_hours(rows, "hb", "ds_moe", "rl") == pytest.approx(expected)
    # The results' run counts are those docs/reproduce.md lists (80, 80, 15, 10, 30; 215 in all).
    counts = [sum(group[-1] for group in groups) for groups in cost.RESULTS.values()]
    assert counts == [80, 80, 15, 10, 30]
