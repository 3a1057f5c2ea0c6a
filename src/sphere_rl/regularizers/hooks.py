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
    concatenated; gradient-norm-ratio combination with ρ = 1e-3. ``coef`` is ρ
    (``ExperimentConfig.rho``; λ in ``fixed`` mode), from which each minibatch's scale ``s`` is
    computed (:mod:`sphere_rl.regularizers.combine` defines the three).

    ``gating_ratio`` adds the release's gate penalty on top of the feature penalty (both on at
    once; 0, the release's default, turns it off). With ``gate_scale="own"`` (the release) it is a
    second penalty, ``<name>_gate``, with ``coef = gating_ratio`` in the same ``mode`` and so its
    own scale (loss mode ``s_gate = r·|L_base| / L_gate``, grad mode
    ``s_gate = r·‖g_base‖ / ‖g_gate‖``, fixed mode ``s_gate = r``). ``"shared"`` folds it into the
    feature penalty, ``L = L_SPHERE + gating_ratio · L_gate``, combined with the policy loss by
    ``coef`` as one.
    """

    variant: str = "last"
    mode: str = "grad"
    coef: float = 1e-3  # ρ (λ in fixed mode)
    pcgrad: bool = False
    gating_ratio: float = 0.0
    gate_scale: str = "own"  # "own" (release) | "shared"
    name: str = "sphere"

    def penalty(self, output: PolicyOutput, obs: Tensor, agent: object) -> Tensor:
        """The feature penalty plus ``gating_ratio`` times the gate penalty (the shared scale)."""
        feature, gate = self._penalties(output, agent)
        return feature if gate is None else feature + self.gating_ratio * gate

    def penalty_terms(
        self, output: PolicyOutput, obs: Tensor, agent: object
    ) -> list[tuple[str, Tensor, float]]:
        """``(name, penalty, coef)``: the gate penalty apart with its own ratio (``own``), or one
        penalty (``shared``, or no gate penalty)."""
        if self.gate_scale == "shared" or self.gating_ratio == 0:
            return [(self.name, self.penalty(output, obs, agent), self.coef)]
        feature, gate = self._penalties(output, agent)
        return [(self.name, feature, self.coef), (f"{self.name}_gate", gate, self.gating_ratio)]

    def _penalties(self, output: PolicyOutput, agent: object) -> tuple[Tensor, Tensor | None]:
        # The gradient-factor variant differentiates the per-sample policy losses; PPOAgent
        # publishes them for the minibatch being penalised.
        sample_loss = getattr(agent, "sample_policy_loss", None)
        feature = sphere_loss(output, self.variant, sample_loss)
        if self.gating_ratio == 0:
            return feature, None
        if output.probs is None:
            raise ValueError("sphere_gating_ratio > 0 needs a Mixture-of-Experts actor")
        return feature, gate_penalty(output.probs)
