"""sphere-rl: spectral-plasticity diagnostics and the SPHERE regularizer for MoE policies in continual RL."""

import os

# Idle OpenMP workers sleep instead of spinning: with the default (spin for a while) two torch
# threads on a busy 2-core machine fight the simulators and each other and run slower than one
# (docs/benchmarks.md). OpenMP reads this once, when torch loads, so it is set here, before any
# sphere_rl module imports torch; an explicit user setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
