"""Cost of the report's bootstrap intervals: one rliable call per experiment (all quantities as
columns, :func:`bootstrap_cis`) against one call per cell (:func:`bootstrap_ci`, the reference),
measured in the same process on the same data.

An experiment of the CW10 report has 6 summary metrics and 4 per-task quantities × 10 tasks =
46 cells over its seeds. Prints both times and the ratio, and the largest difference between
the two sets of interval ends (Monte Carlo noise of the percentile estimates, not a bias).

    .venv/bin/python benchmarks/report_intervals.py              # 5 seeds, 10,000 resamples
    .venv/bin/python benchmarks/report_intervals.py --reps 2000  # quicker
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sphere_rl.analysis.bootstrap import bootstrap_ci, bootstrap_cis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--cells", type=int, default=46)
    parser.add_argument("--reps", type=int, default=10_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    values = np.random.default_rng(0).uniform(0, 1, size=(args.seeds, args.cells))
    bootstrap_ci(values[:, 0], reps=10)  # import rliable, arch, statsmodels before timing

    start = time.perf_counter()
    reference = [bootstrap_ci(values[:, k], reps=args.reps) for k in range(args.cells)]
    per_cell = time.perf_counter() - start
    start = time.perf_counter()
    batched = bootstrap_cis(values, reps=args.reps)
    one_call = time.perf_counter() - start

    gap = max(
        max(abs(a.low - b.low), abs(a.high - b.high))
        for a, b in zip(reference, batched, strict=True)
    )
    print(f"{args.cells} cells × {args.seeds} seeds, {args.reps} resamples")
    print(f"  per cell (reference): {per_cell:8.2f} s")
    print(f"  one call (report):    {one_call:8.2f} s")
    print(f"  speed-up: {per_cell / one_call:.1f}×; largest end difference {gap:.3f}")


if __name__ == "__main__":
    main()
