"""Continual backpropagation, CBP (Dohare, Hernandez-Garcia, Lan, Rahman, Mahmood & Sutton,
Nature 2024).

After every update, each hidden unit's *contribution utility* is updated as a running average

    u ← η u + (1 − η) · mean_batch |h| · Σ_k |w_out,k|

(``h`` its output, ``w_out`` its outgoing weights). Units older than the maturity threshold ``m``
are *mature*; every update adds ``ρ × (number of mature units)`` to a per-layer budget, and whenever
the budget reaches one or more, that many mature units with the lowest utility are replaced: fresh
incoming weights from the initialisation distribution, zero outgoing weights (the network's output
is unchanged), utility and age reset to zero. Adam's moments of the replaced weights are cleared,
as in the authors' RL code.

Mixture-of-Experts actors: each expert's layer is its own layer (its own budget, its lowest units),
all experts handled by one batched operation; the gating network's units are replaced like a dense
layer's. The utility uses each expert's unweighted activity: a unit's usefulness to its expert's
output, whether or not the gate selects the expert on a state. The critic is included by default
(the paper applies CBP to the policy and the value network).
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


def contribution_utility(activations: Tensor, outgoing: Tensor) -> Tensor:
    """Instantaneous contribution of each unit.

    Args:
        activations: ``(E, N, d)`` unit outputs on a batch.
        outgoing: ``(E, fan_out, d)`` weights out of the units.

    Returns:
        ``(E, d)``: ``mean_n |h| · Σ_k |w_kj|``.
    """
    return activations.abs().mean(-2) * outgoing.abs().sum(-2)


def lowest_utility_mask(utility: Tensor, eligible: Tensor, counts: Tensor) -> Tensor:
    """Select, in each group, the ``counts[e]`` eligible units with the lowest utility.

    Args:
        utility: ``(E, d)``.
        eligible: ``(E, d)`` boolean (mature units).
        counts: ``(E,)`` integers, at most the number of eligible units of each group.

    Returns:
        ``(E, d)`` boolean mask with exactly ``counts[e]`` true entries in row ``e``.
    """
    order = utility.masked_fill(~eligible, float("inf")).argsort(dim=-1, stable=True)
    ranks = torch.empty_like(order)
    positions = torch.arange(order.shape[-1], device=order.device).expand_as(order)
    ranks.scatter_(-1, order, positions)
    return (ranks < counts.unsqueeze(-1)) & eligible


class ContinualBackprop(UnitActivityObserver, TrainingCallback):
    """CBP as a PPO training callback that observes each minibatch.

    Args:
        replacement_rate: ``ρ``, units replaced per mature unit and update.
        maturity: ``m``, updates a unit is protected after its (re)initialisation.
        decay: ``η``, decay of the utility's running average.
        critic: also act on the critic.
    """

    name = "cbp"

    def __init__(
        self,
        replacement_rate: float = 1e-4,
        maturity: int = 10_000,
        decay: float = 0.99,
        critic: bool = True,
    ) -> None:
        self.replacement_rate = replacement_rate
        self.maturity = maturity
        self.decay = decay
        self.critic = critic
        self.layers: list[UnitLayer] = []
        self.utility: dict[str, Tensor] = {}
        self.age: dict[str, Tensor] = {}
        self.budget: dict[str, Tensor] = {}
        self.replaced = 0  # total units replaced, for inspection

    @classmethod
    def from_config(cls, cfg: ExperimentConfig) -> ContinualBackprop:
        return cls(
            replacement_rate=cfg.cbp_replacement_rate,
            maturity=cfg.cbp_maturity,
            decay=cfg.cbp_decay,
            critic=cfg.intervene_on_critic,
        )

    def attach(self, agent) -> None:
        self.layers = [u for t in agent_towers(agent, self.critic) for u in hidden_units(t)]
        for layer in self.layers:
            like = layer.bias.get()
            self.utility[layer.name] = torch.zeros_like(like)
            self.age[layer.name] = torch.zeros_like(like)
            self.budget[layer.name] = torch.zeros(like.shape[0], device=like.device)

    @torch.no_grad()
    def after_optimizer_step(self, agent) -> None:
        if self.last_obs is None:
            return
        optimizers = (agent.actor_optimizer, agent.critic_optimizer)
        for layer, h in zip(
            self.layers, self.minibatch_activations(self.layers, agent), strict=True
        ):
            mask = self.step_layer(layer, h)
            reinitialize_units_(layer, mask, optimizers)
        self.last_obs = None

    def step_layer(self, layer: UnitLayer, activations: Tensor) -> Tensor:
        """Update one layer's utilities, ages and budget; return the ``(E, d)`` units to replace
        (their utility and age are already reset)."""
        utility, age, budget = (d[layer.name] for d in (self.utility, self.age, self.budget))
        instant = contribution_utility(activations, layer.outgoing.get())
        utility.mul_(self.decay).add_(instant, alpha=1.0 - self.decay)
        age.add_(1.0)
        mature = age > self.maturity
        budget.add_(self.replacement_rate * mature.sum(-1))
        counts = budget.floor()
        budget.sub_(counts)
        mask = lowest_utility_mask(utility, mature, counts.long())
        utility.masked_fill_(mask, 0.0)
        age.masked_fill_(mask, 0.0)
        self.replaced += int(mask.sum())
        return mask

    def state_dict(self) -> dict:
        return {
            "utility": dict(self.utility),
            "age": dict(self.age),
            "budget": dict(self.budget),
            "replaced": self.replaced,
        }

    def load_state_dict(self, state: dict) -> None:
        for key in ("utility", "age", "budget"):
            target = getattr(self, key)
            for name, value in state[key].items():
                target[name].copy_(value)
        self.replaced = state["replaced"]
