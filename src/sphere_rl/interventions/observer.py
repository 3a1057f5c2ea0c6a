"""How a network-editing intervention sees the states PPO is training on.

:class:`~sphere_rl.algo.hooks.TrainingCallback.after_optimizer_step` receives only the agent, but
CBP's utilities and ReDo's dormancy scores are statistics of the units' activity on the current
minibatch. PPO hands every :class:`~sphere_rl.algo.hooks.MinibatchObserver` the actor's forward
pass on each minibatch before the update; :class:`UnitActivityObserver` keeps what these
statistics need of it until the optimiser step that follows.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from sphere_rl.interventions.units import UnitLayer, unit_activations
from sphere_rl.nn.policy import PolicyOutput


class UnitActivityObserver:
    """Mixin implementing :class:`~sphere_rl.algo.hooks.MinibatchObserver`: keeps the last
    minibatch's observations and the actor's hidden activations on them (computed by PPO's forward
    pass, before the update)."""

    last_obs: Tensor | None = None
    last_hidden: tuple[Tensor, ...] = ()

    def observe_minibatch(self, output: PolicyOutput, obs: Tensor, agent) -> None:
        self.last_obs = obs.detach()
        # Expert-major (E, N, d), the layout of ExpertTrunk's outputs; dense stays (N, d).
        if output.routed is not None:
            # Sparse dispatch computed only the selected experts; unit statistics need them all.
            with torch.no_grad():
                self.last_hidden = tuple(agent.actor.experts(obs))
        else:
            self.last_hidden = tuple(
                h.detach().transpose(0, 1) if h.dim() == 3 else h.detach() for h in output.hidden
            )

    def minibatch_activations(self, layers: Sequence[UnitLayer], agent) -> list[Tensor]:
        """``(E, N, d)`` outputs of each layer on the last minibatch: the actor's main trunk's from
        PPO's forward pass, the others' (gate, critic) from a new forward pass."""
        actor = agent.actor
        main_trunk = actor.experts if hasattr(actor, "experts") else actor.trunk
        known = {id(main_trunk): list(self.last_hidden)}
        return unit_activations(layers, self.last_obs, known)
