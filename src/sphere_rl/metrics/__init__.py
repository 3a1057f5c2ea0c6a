"""Spectral-plasticity diagnostics: the exact eNTK effective rank and standard plasticity metrics.

See ``docs/metrics.md`` for what each metric means and how to read it.
"""

from sphere_rl.metrics.ntk import entk, entk_effective_rank
from sphere_rl.metrics.plasticity import (
    DORMANT_THRESHOLDS,
    RoutingStats,
    active_fraction,
    distance_from_init,
    dormant_ratio,
    grad_norm,
    layer_features,
    plasticity_report,
    routing_stats,
    sphere_proxy_rank,
    weight_norm,
)
from sphere_rl.metrics.spectral import (
    effective_rank,
    effective_rank_from_spectrum,
    spectrum,
    srank,
)

__all__ = [
    "DORMANT_THRESHOLDS",
    "RoutingStats",
    "active_fraction",
    "distance_from_init",
    "dormant_ratio",
    "effective_rank",
    "effective_rank_from_spectrum",
    "entk",
    "entk_effective_rank",
    "grad_norm",
    "layer_features",
    "plasticity_report",
    "routing_stats",
    "spectrum",
    "sphere_proxy_rank",
    "srank",
    "weight_norm",
]
