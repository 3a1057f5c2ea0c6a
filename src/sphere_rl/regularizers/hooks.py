"""SPHERE as a PPO actor regularizer (see :class:`sphere_rl.algo.hooks.ActorRegularizer`)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from sphere_rl.nn.policy import PolicyOutput
from sphere_rl.regularizers.sphere import gate_penalty, sphere_loss


@dataclass
class SphereRegularizer:
    """The SPHERE penalty on each minibatch's forward pass.

    Defaults follow the authors' HumanoidBench runs: last hidden expert layer, routing-weighted,
    concatenated; gradient-norm-ratio combination with ρ = 1e-3.

    ``gating_ratio`` adds the release's gate penalty on top of the feature penalty:
    ``L = L_SPHERE + gating_ratio · L_gate`` (both on at once; 0, the release's default, turns it
    off). The sum is then combined with the policy loss by ``mode``/``coef`` like any penalty.
    """

    variant: str = "last"
    mode: str = "grad"
    coef: float = 1e-3
    pcgrad: bool = False
    gating_ratio: float = 0.0
    name: str = "sphere"

    def penalty(self, output: PolicyOutput, obs: Tensor, agent: object) -> Tensor:
        # The gradient-factor variant differentiates the per-sample policy losses; PPOAgent
        # publishes them for the minibatch being penalised.
        sample_loss = getattr(agent, "sample_policy_loss", None)
        loss = sphere_loss(output, self.variant, sample_loss)
        if self.gating_ratio > 0:
            if output.probs is None:
                raise ValueError("sphere_gating_ratio > 0 needs a Mixture-of-Experts actor")
            loss = loss + self.gating_ratio * gate_penalty(output.probs)
        return loss
