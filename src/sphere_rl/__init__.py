"""sphere-rl: spectral-plasticity diagnostics and the SPHERE regularizer for MoE policies in continual RL.

The plug-in API is importable from here (``sphere_rl.register_regularizer(...)``; see
``docs/extending.md``). It is loaded on first use, so ``import sphere_rl`` stays cheap.
"""

from __future__ import annotations

import os
from typing import Any

# Idle OpenMP workers sleep instead of spinning: with the default (spin for a while) two torch
# threads on a busy 2-core machine fight the simulators and each other and run slower than one
# (docs/benchmarks.md). OpenMP reads this once, when torch loads, so it is set here, before any
# sphere_rl module imports torch; an explicit user setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

# name → module that defines it
_LAZY = {
    "register_method": "sphere_rl.methods",
    "register_regularizer": "sphere_rl.methods",
    "register_intervention": "sphere_rl.methods",
    "Setting": "sphere_rl.components",
    "load_plugins": "sphere_rl.plugins",
    "build_config": "sphere_rl.config",
    "ContinualRunner": "sphere_rl.continual.runner",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sphere_rl' has no attribute {name!r}")
