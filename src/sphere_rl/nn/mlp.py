"""Dense MLP actor and critic (the PPO, PPO(10x) and LayerNorm baselines)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from sphere_rl.nn.layers import (
    POLICY_HEAD_GAIN,
    VALUE_HEAD_GAIN,
    MLPTrunk,
    check_hidden_sizes,
    check_positive_int,
    orthogonal_init_,
)
from sphere_rl.nn.policy import GaussianActor, PolicyOutput

DEFAULT_HIDDEN = (256, 256, 256)


def _scaled_hidden(hidden: Sequence[int], width_multiplier: float) -> tuple[int, ...]:
    if not (isinstance(width_multiplier, int | float) and width_multiplier > 0):
        raise ValueError(f"width_multiplier must be a number > 0, got {width_multiplier!r}")
    hidden = check_hidden_sizes(hidden)
    return tuple(max(1, round(w * width_multiplier)) for w in hidden)


class MLPActor(GaussianActor):
    """Dense Gaussian policy ``obs → hidden… → action mean``.

    Args:
        obs_dim: observation size.
        act_dim: action size.
        hidden: hidden widths before the multiplier (default 3×256, the paper's setting).
        width_multiplier: scales every hidden width (rounded); see :func:`param_matched_width` for
            the PPO(10x) rule.
        layer_norm: LayerNorm between each linear layer and its activation (the "LN" baseline).
        activation: ``"relu"`` (default), ``"crelu"`` or ``"tanh"``.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = DEFAULT_HIDDEN,
        width_multiplier: float = 1.0,
        layer_norm: bool = False,
        activation: str = "relu",
    ) -> None:
        super().__init__(obs_dim, act_dim)
        self.hidden_sizes = _scaled_hidden(hidden, width_multiplier)
        self.trunk = MLPTrunk(obs_dim, self.hidden_sizes, activation, layer_norm)
        self.head = orthogonal_init_(nn.Linear(self.trunk.out_dim, act_dim), POLICY_HEAD_GAIN)

    def forward(self, obs: Tensor) -> PolicyOutput:
        hidden = self.trunk(obs)
        return PolicyOutput(mean=self.head(hidden[-1]), log_std=self.log_std, hidden=hidden)


class MLPCritic(nn.Module):
    """Dense state-value network ``obs → hidden… → V(s)``; same options as :class:`MLPActor`."""

    def __init__(
        self,
        obs_dim: int,
        hidden: Sequence[int] = DEFAULT_HIDDEN,
        width_multiplier: float = 1.0,
        layer_norm: bool = False,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        check_positive_int("obs_dim", obs_dim)
        self.hidden_sizes = _scaled_hidden(hidden, width_multiplier)
        self.trunk = MLPTrunk(obs_dim, self.hidden_sizes, activation, layer_norm)
        self.head = orthogonal_init_(nn.Linear(self.trunk.out_dim, 1), VALUE_HEAD_GAIN)

    def forward(self, obs: Tensor) -> Tensor:
        """``(N, obs_dim)`` → ``(N,)`` values."""
        return self.head(self.trunk(obs)[-1]).squeeze(-1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def release_width(width: int, param_mult: float) -> int:
    """The release's widening rule ``int(width · sqrt(param_mult) + 0.5)`` (256, 10 → 810)."""
    check_positive_int("width", width)
    if not (isinstance(param_mult, int | float) and param_mult > 0):
        raise ValueError(f"param_mult must be a number > 0, got {param_mult!r}")
    return max(1, int(width * math.sqrt(param_mult) + 0.5))


def param_matched_width(target_params: int, obs_dim: int, act_dim: int, depth: int = 3) -> int:
    """Smallest equal hidden width ``w`` whose dense actor has at least ``target_params`` parameters.

    A dense actor with ``depth`` hidden layers of width ``w`` has
    ``(obs+1)w + (depth-1)(w+1)w + (w+1)act + act`` parameters (the last ``act`` is the log-std);
    we solve the quadratic for ``w`` and round up. PPO(10x) with ``ppo10x_width: param_matched``
    uses this with the parameter count of the 10-expert Top-K MoE actor (experts and gate), so dense
    and MoE policies are compared at equal size; the default is the release's
    :func:`release_width`.
    """
    check_positive_int("target_params", target_params)
    check_positive_int("depth", depth)
    a = depth - 1
    b = obs_dim + 1 + (depth - 1) + act_dim
    c = 2 * act_dim - target_params
    width = -c / b if a == 0 else (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
    width = max(1, math.ceil(width))
    while count_parameters(MLPActor(obs_dim, act_dim, (width,) * depth)) < target_params:
        width += 1  # guard against floating-point rounding
    return width
