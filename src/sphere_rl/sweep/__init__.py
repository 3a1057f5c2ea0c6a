"""Sweeps: expand methods × seeds × protocols × benchmarks into runs and train them on Ray."""

from sphere_rl.sweep.grid import (
    SweepGrid,
    expand_grid,
    parse_names,
    parse_seeds,
    parse_variation,
)
from sphere_rl.sweep.plan import PlannedRun, plan_runs

__all__ = [
    "PlannedRun",
    "SweepGrid",
    "expand_grid",
    "parse_names",
    "parse_seeds",
    "parse_variation",
    "plan_runs",
]
