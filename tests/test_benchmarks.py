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
