"""Reading run directories back, and plotting them."""

from sphere_rl.analysis.runs import RunData, find_runs, load_run

__all__ = ["RunData", "find_runs", "load_run"]
