"""Regularizers: the SPHERE penalty, its variants, and how they combine with the policy gradient."""

from sphere_rl.regularizers.combine import (
    MODES,
    apply_regularized_gradients,
    combine_flat_gradients,
    combine_parameter_gradients,
    penalty_coefficient,
    penalty_scale,
)
from sphere_rl.regularizers.sphere import (
    VARIANTS,
    gate_penalty,
    gradient_factor_features,
    per_expert_penalty,
    routed_sphere_penalty,
    routing_weighted_features,
    sphere_loss,
    sphere_penalty,
)

__all__ = [
    "MODES",
    "VARIANTS",
    "apply_regularized_gradients",
    "combine_flat_gradients",
    "combine_parameter_gradients",
    "gate_penalty",
    "gradient_factor_features",
    "penalty_coefficient",
    "penalty_scale",
    "per_expert_penalty",
    "routed_sphere_penalty",
    "routing_weighted_features",
    "sphere_loss",
    "sphere_penalty",
]
