"""Direction study (issue #18): how many seeds the direction question needs, from the variance of
the existing runs, and what a development machine can detect.

    python studies/direction_power.py        # writes docs/studies/direction-power/tables.md

Input: ``docs/studies/direction-power/inputs.csv``, the only record left of the earlier direction
runs (door-close → drawer-close → handle-press, 32,768 steps per task, 5 seeds): per method and
protocol, the mean CRL/RL average success and its 95% percentile-bootstrap interval over seeds.
Those runs cannot be traced (docs/results.md, "Earlier publications, withdrawn"), so they serve
here only as an estimate of the spread between seeds, never as a result.

The per-seed standard deviation is recovered from each interval: a percentile bootstrap of the
mean of n values spans about ±1.96 · s_pop / √n, with s_pop the population (ddof = 0) standard
deviation, so s = (high − low) / (2 · 1.96) · √n · √(n / (n − 1)).
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

from sphere_rl.analysis.power import detectable_difference, seeds_needed

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "docs" / "studies" / "direction-power"
DELTAS = (0.1, 0.2, 0.3)
SEEDS = (5, 10, 20)
MINUTES_PER_RUN = 4.0  # one 3 × 32,768-step MetaWorld run on one core (docs/results.md)


def seed_sd(n: int, low: float, high: float) -> float:
    """Per-seed standard deviation behind a 95% percentile-bootstrap interval of a mean of n."""
    return (high - low) / (2 * 1.96) * math.sqrt(n) * math.sqrt(n / (n - 1))


def read_inputs(path: Path = HERE / "inputs.csv") -> dict[tuple[str, str], float]:
    with open(path, newline="") as f:
        return {
            (r["method"], r["protocol"]): seed_sd(int(r["n"]), float(r["ci_low"]),
                                                  float(r["ci_high"]))
            for r in csv.DictReader(f)
        }  # fmt: skip


def render(sds: dict[tuple[str, str], float]) -> str:
    crl = math.sqrt((sds["topk_moe", "crl"] ** 2 + sds["sphere", "crl"] ** 2) / 2)
    # The gap question (is SPHERE's CRL − RL gap smaller than Top-K MoE's?) compares differences
    # of two independent arms each, so its per-seed variance is the sum of both protocols'.
    gap = math.sqrt(sum(sds[m, p] ** 2 for m in ("topk_moe", "sphere") for p in ("crl", "rl")) / 2)
    lines = [
        "**Per-seed spread of average success in the earlier direction runs** (5 seeds each,"
        " recovered from their 95% percentile-bootstrap intervals; used only as a variance"
        " estimate)",
        "",
        "| method | protocol | per-seed s.d. |",
        "|---|---|---|",
        *[f"| {m} | {p} | {s:.2f} |" for (m, p), s in sorted(sds.items())],
        "",
        "**Seeds per arm for 80% power** (two-sided Welch/t test, α = 0.05)",
        "",
        "| comparison | s.d. | " + " | ".join(f"δ = {d}" for d in DELTAS)
        + " | " + " | ".join(f"detectable δ at n = {n}" for n in SEEDS) + " |",
        "|---|---|" + "---|" * (len(DELTAS) + len(SEEDS)),
    ]
    for name, sd, arms in (
        ("CRL average success, SPHERE − Top-K MoE", crl, 2),
        ("CRL − RL gap, SPHERE − Top-K MoE", gap, 4),
    ):
        needed = [seeds_needed(d, sd) for d in DELTAS]
        detectable = [detectable_difference(n, sd) for n in SEEDS]
        lines.append(
            f"| {name} ({arms} arms) | {sd:.2f} | "
            + " | ".join(str(k) for k in needed)
            + " | " + " | ".join(f"{d:.2f}" for d in detectable) + " |"
        )
    hours = {d: 4 * seeds_needed(d, gap) * MINUTES_PER_RUN / 60 for d in DELTAS}
    lines += [
        "",
        "Core-hours for the gap question (4 arms × seeds × ~4 min per run): "
        + ", ".join(f"δ = {d}: {h:.0f}" for d, h in hours.items())
        + ". A 2-core development machine gives about 2 core-hours per hour.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    text = render(read_inputs())
    (HERE / "tables.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
