"""Rollout storage and generalized advantage estimation."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def compute_gae(
    rewards: Tensor,
    values: Tensor,
    dones: Tensor,
    next_value: Tensor,
    next_done: Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimation (Schulman et al. 2016).

    Args:
        rewards, values: ``(T, N)``; rewards already include the bootstrap ``γ V(s_final)`` of
            truncated episodes.
        dones: ``(T, N)`` 1.0 where the observation at step ``t`` starts a new episode (the previous
            step ended one), so no value flows back across it.
        next_value, next_done: ``(N,)`` value and done flag of the observation after the rollout.
        gamma, gae_lambda: discount and GAE λ.

    Returns:
        ``(advantages, returns)``, both ``(T, N)``.
    """
    steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(steps)):  # a scan over time; vectorised over environments
        if t == steps - 1:
            not_done, value_next = 1.0 - next_done, next_value
        else:
            not_done, value_next = 1.0 - dones[t + 1], values[t + 1]
        delta = rewards[t] + gamma * value_next * not_done - values[t]
        last = delta + gamma * gae_lambda * not_done * last
        advantages[t] = last
    return advantages, advantages + values


@dataclass
class RolloutBuffer:
    """Fixed-size on-policy storage of ``T`` steps from ``N`` environments."""

    obs: Tensor  # (T, N, obs_dim), normalised as the policy saw them
    actions: Tensor  # (T, N, act_dim), unclipped samples
    log_probs: Tensor  # (T, N)
    rewards: Tensor  # (T, N)
    dones: Tensor  # (T, N)
    values: Tensor  # (T, N)

    @classmethod
    def empty(
        cls, steps: int, num_envs: int, obs_dim: int, act_dim: int, device: str
    ) -> RolloutBuffer:
        def zeros(*shape: int) -> Tensor:
            return torch.zeros(*shape, device=device)

        return cls(
            obs=zeros(steps, num_envs, obs_dim),
            actions=zeros(steps, num_envs, act_dim),
            log_probs=zeros(steps, num_envs),
            rewards=zeros(steps, num_envs),
            dones=zeros(steps, num_envs),
            values=zeros(steps, num_envs),
        )
