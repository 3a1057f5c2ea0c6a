"""SPHERE as a PPO actor regularizer (see :class:`sphere_rl.algo.hooks.ActorRegularizer`)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from sphere_rl.nn.policy import PolicyOutput
from sphere_rl.regularizers.sphere import sphere_loss


@dataclass
class SphereRegularizer:
    """The SPHERE penalty on each minibatch's forward pass.

    Defaults follow the authors' HumanoidBench runs: last hidden expert layer, routing-weighted,
    concatenated; gradient-norm-ratio combination with ρ = 1e-3.
    """

    variant: str = "last"
    mode: str = "grad"
    coef: float = 1e-3
    pcgrad: bool = False
    name: str = "sphere"

    def penalty(self, output: PolicyOutput, obs: Tensor, agent: object) -> Tensor:
        return sphere_loss(output, self.variant)
