"""What every actor returns, and the diagonal-Gaussian policy built on it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.distributions import Normal

from sphere_rl.nn.dispatch import RoutedExperts
from sphere_rl.nn.layers import check_positive_int


@dataclass
class PolicyOutput:
    """One forward pass of an actor on ``N`` states.

    Attributes:
        mean: ``(N, A)`` Gaussian mean of the action.
        log_std: ``(A,)`` state-independent log standard deviation.
        hidden: hidden activations, one entry per hidden layer (post-activation). Dense actors give
            ``(N, d_l)``; MoE actors give the experts' activations as ``(N, E, d_l)``, unweighted.
            After sparse dispatch only the selected experts were computed: the others read as zeros
            (they always meet a zero routing weight).
        logits: ``(N, E)`` gate logits (MoE only, else ``None``).
        probs: ``(N, E)`` routing weights actually used to mix the experts (MoE only, else ``None``).
        routed: the selected experts' activations in sparse dispatch's padded layout (Top-K MoE
            with ``dispatch="sparse"`` only, else ``None``); the SPHERE penalty uses it directly.
    """

    mean: Tensor
    log_std: Tensor
    hidden: Sequence[Tensor]
    logits: Tensor | None = None
    probs: Tensor | None = None
    routed: RoutedExperts | None = None

    @property
    def expert_features(self) -> Tensor:
        """``(N, E, d)`` last hidden activations of the experts (the input of their output layer)."""
        if self.probs is None:
            raise AttributeError("expert_features exists only for Mixture-of-Experts actors")
        return self.hidden[-1]

    @property
    def is_moe(self) -> bool:
        return self.probs is not None

    def distribution(self) -> Normal:
        # Validation off: NaNs must reach the PPO loss guard, which stops the run cleanly.
        return Normal(self.mean, self.log_std.exp().expand_as(self.mean), validate_args=False)


class GaussianActor(nn.Module):
    """Base class: a network producing the mean, plus one learned state-independent log-std."""

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        check_positive_int("obs_dim", obs_dim)
        check_positive_int("act_dim", act_dim)
        self.obs_dim = obs_dim
        self.act_dim = act_dim
        self.log_std = nn.Parameter(torch.zeros(act_dim))

    def forward(self, obs: Tensor) -> PolicyOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def act(self, obs: Tensor, deterministic: bool = False) -> Tensor:
        """Sample an action (or take the mean) for a ``(N, obs_dim)`` batch."""
        out = self(obs)
        return out.mean if deterministic else out.distribution().sample()
