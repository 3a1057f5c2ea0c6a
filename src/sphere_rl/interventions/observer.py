"""How a network-editing intervention sees the states PPO is training on.

:class:`~sphere_rl.algo.hooks.TrainingCallback.after_optimizer_step` receives only the agent, but
CBP's utilities and ReDo's dormancy scores are statistics of the units' activity on the current
minibatch. PPO calls every :class:`~sphere_rl.algo.hooks.ActorRegularizer` with each minibatch's
observations, so an intervention that also presents itself as a regularizer of weight zero
receives them there; :func:`sphere_rl.methods.build_agent` registers a plug-in in both roles when it
implements both. Its logged penalty (``reg/<name>``) is always 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from sphere_rl.interventions.units import UnitLayer, unit_activations
from sphere_rl.nn.policy import PolicyOutput


class MinibatchObserver:
    """Mixin: a zero-weight :class:`~sphere_rl.algo.hooks.ActorRegularizer` that keeps the last
    minibatch's observations and the actor's hidden activations on them (computed by PPO's forward
    pass, before the update)."""

    name: str
    mode = "fixed"
    coef = 0.0
    pcgrad = False
    last_obs: Tensor | None = None
    last_hidden: tuple[Tensor, ...] = ()

    def penalty(self, output: PolicyOutput, obs: Tensor, agent: object) -> Tensor:
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
        return torch.zeros((), device=obs.device)

    def minibatch_activations(self, layers: Sequence[UnitLayer], agent) -> list[Tensor]:
        """``(E, N, d)`` outputs of each layer on the last minibatch: the actor's main trunk's from
        PPO's forward pass, the others' (gate, critic) from a new forward pass."""
        actor = agent.actor
        main_trunk = actor.experts if hasattr(actor, "experts") else actor.trunk
        known = {id(main_trunk): list(self.last_hidden)}
        return unit_activations(layers, self.last_obs, known)
