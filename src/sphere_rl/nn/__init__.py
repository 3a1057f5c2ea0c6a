"""Networks: dense and Mixture-of-Experts Gaussian actors, and the critic."""

from sphere_rl.nn.layers import ExpertLinear, ExpertTrunk, MLPTrunk
from sphere_rl.nn.mlp import (
    MLPActor,
    MLPCritic,
    count_parameters,
    param_matched_width,
    release_width,
)
from sphere_rl.nn.moe import (
    DenseMoEActor,
    DSMoEActor,
    TopKMoEActor,
    dense_routing,
    topk_routing,
)
from sphere_rl.nn.policy import GaussianActor, PolicyOutput

__all__ = [
    "DSMoEActor",
    "DenseMoEActor",
    "ExpertLinear",
    "ExpertTrunk",
    "GaussianActor",
    "MLPActor",
    "MLPCritic",
    "MLPTrunk",
    "PolicyOutput",
    "TopKMoEActor",
    "count_parameters",
    "dense_routing",
    "param_matched_width",
    "release_width",
    "topk_routing",
]
