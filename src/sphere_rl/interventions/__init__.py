"""Plasticity interventions: the paper's baselines and standard remedies, for dense and MoE actors.

Penalties on the actor (:class:`~sphere_rl.algo.hooks.ActorRegularizer`): Parseval regularization,
C-CHAIN, L2 Init. Edits of the networks (:class:`~sphere_rl.algo.hooks.TrainingCallback`): CBP,
ReDo, Shrink & Perturb; CBP and ReDo read each minibatch as
:class:`~sphere_rl.algo.hooks.MinibatchObserver` s. See ``docs/methods.md`` for defaults and
sources, and :mod:`sphere_rl.interventions.units` for how dense trunks and stacked experts are
handled alike. Every hook a plug-in may declare (``prepare_actor`` and ``attach`` too) is listed
in :mod:`sphere_rl.algo.hooks`.
"""

from sphere_rl.interventions.cbp import ContinualBackprop, contribution_utility, lowest_utility_mask
from sphere_rl.interventions.cchain import CChain, churn
from sphere_rl.interventions.l2_init import L2Init, l2_init_penalty
from sphere_rl.interventions.parseval import (
    DiagonalScale,
    ParsevalRegularizer,
    actor_parseval_penalty,
    add_diagonal_layers,
    parseval_penalty,
)
from sphere_rl.interventions.redo import ReDo, dormant_mask
from sphere_rl.interventions.shrink_perturb import ShrinkPerturb, shrink_perturb_
from sphere_rl.interventions.units import (
    UnitLayer,
    WeightMatrix,
    hidden_units,
    orthogonal_init,
    reinitialize_units_,
    towers,
    weight_matrices,
)

__all__ = [
    "CChain",
    "ContinualBackprop",
    "DiagonalScale",
    "L2Init",
    "ParsevalRegularizer",
    "ReDo",
    "ShrinkPerturb",
    "UnitLayer",
    "WeightMatrix",
    "actor_parseval_penalty",
    "add_diagonal_layers",
    "churn",
    "contribution_utility",
    "dormant_mask",
    "hidden_units",
    "l2_init_penalty",
    "lowest_utility_mask",
    "orthogonal_init",
    "parseval_penalty",
    "reinitialize_units_",
    "shrink_perturb_",
    "towers",
    "weight_matrices",
]
