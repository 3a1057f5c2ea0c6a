"""ReDo: recycling dormant neurons (Sokar, Agarwal, Castro & Evci, ICML 2023).

Every ``period`` updates, each hidden unit gets the score ``s = E|h| / mean over its layer of
E|h|`` on the current minibatch; units with ``s ≤ τ`` are *dormant* and are recycled: fresh incoming
weights from the initialisation distribution, zero outgoing weights, Adam moments cleared.

The score is the one :func:`sphere_rl.metrics.dormant_ratio` reports, per unit instead of as a
fraction. Mixture-of-Experts actors: each expert is its own layer (scores normalised within the
expert) and all experts are handled at once; the gating network is a dense layer. The critic is
included by default (ReDo recycles the whole network).
"""

from __future__ import annotations

import torch
from torch import Tensor

from sphere_rl.algo.hooks import TrainingCallback
from sphere_rl.config import ExperimentConfig
from sphere_rl.interventions.observer import UnitActivityObserver
from sphere_rl.interventions.units import (
    UnitLayer,
    agent_towers,
    hidden_units,
    reinitialize_units_,
)
from sphere_rl.nn.policy import PolicyOutput


def dormant_mask(activations: Tensor, tau: float) -> Tensor:
    """Dormant units of each group.

    Args:
        activations: ``(E, N, d)`` unit outputs on a batch (``E`` groups of ``d`` units).
        tau: threshold on the normalised score.

    Returns:
        ``(E, d)`` boolean, true where ``mean_n |h| / mean_units(mean_n |h|) ≤ tau``; a group whose
        units are all silent is entirely dormant.
    """
    activity = activations.abs().mean(-2)
    layer_mean = activity.mean(-1, keepdim=True)
    score = torch.where(layer_mean > 0, activity / layer_mean.clamp_min(1e-30), 0.0)
    return score <= tau


class ReDo(UnitActivityObserver, TrainingCallback):
    """ReDo as a PPO training callback that observes each minibatch.

    Args:
        tau: dormancy threshold ``τ``.
        period: updates between recyclings.
        critic: also act on the critic.
    """

    name = "redo"

    def __init__(self, tau: float = 0.1, period: int = 1000, critic: bool = True) -> None:
        self.tau = tau
        self.period = period
        self.critic = critic
        self.layers: list[UnitLayer] = []
        self.updates = 0
        self.recycled = 0  # total units recycled, for inspection

    @classmethod
    def from_config(cls, cfg: ExperimentConfig) -> ReDo:
        return cls(tau=cfg.redo_tau, period=cfg.redo_period, critic=cfg.intervene_on_critic)

    def attach(self, agent) -> None:
        self.layers = [u for t in agent_towers(agent, self.critic) for u in hidden_units(t)]

    def observe_minibatch(self, output: PolicyOutput, obs: Tensor, agent) -> None:
        # Only the minibatch of a recycling update is read, so only it is kept: with sparse
        # dispatch, keeping one costs a forward pass of every expert.
        if (self.updates + 1) % self.period == 0:
            super().observe_minibatch(output, obs, agent)

    @torch.no_grad()
    def after_optimizer_step(self, agent) -> None:
        self.updates += 1
        if self.updates % self.period or self.last_obs is None:
            return
        optimizers = (agent.actor_optimizer, agent.critic_optimizer)
        for layer, h in zip(
            self.layers, self.minibatch_activations(self.layers, agent), strict=True
        ):
            mask = dormant_mask(h, self.tau)
            reinitialize_units_(layer, mask, optimizers)
            self.recycled += int(mask.sum())
        self.last_obs, self.last_hidden = None, ()

    def state_dict(self) -> dict:
        return {"updates": self.updates, "recycled": self.recycled}

    def load_state_dict(self, state: dict) -> None:
        self.updates, self.recycled = state["updates"], state["recycled"]
