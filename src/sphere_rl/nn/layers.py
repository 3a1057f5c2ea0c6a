"""Building blocks shared by the dense and Mixture-of-Experts networks.

Initialisation follows the PPO convention used by CleanRL and Stable-Baselines3: orthogonal weights
with gain sqrt(2) for hidden layers, a small gain for the policy head (so the initial policy is close
to zero-mean) and gain 1 for the value head; all biases zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from sphere_rl.nn.dispatch import DispatchPlan, grouped_linear

HIDDEN_GAIN = math.sqrt(2.0)
POLICY_HEAD_GAIN = 0.01
VALUE_HEAD_GAIN = 1.0
# Flax's LayerNorm default, which the release uses in experts, gate and critic (torch's is 1e-5).
LAYER_NORM_EPS = 1e-6

ACTIVATIONS = ("relu", "crelu", "tanh")


def check_positive_int(name: str, value: int) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def check_hidden_sizes(hidden: Sequence[int]) -> tuple[int, ...]:
    """Validate a tuple of hidden-layer widths (non-empty, each >= 1)."""
    hidden = tuple(hidden)
    if len(hidden) == 0:
        raise ValueError("hidden must list at least one hidden-layer width, got an empty sequence")
    for i, width in enumerate(hidden):
        check_positive_int(f"hidden[{i}]", width)
    return hidden


def check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


def activation_width_factor(activation: str) -> int:
    """CReLU concatenates relu(x) and relu(-x), doubling the width seen by the next layer."""
    return 2 if activation == "crelu" else 1


def apply_activation(x: Tensor, activation: str) -> Tensor:
    if activation == "relu":
        return torch.relu(x)
    if activation == "crelu":
        return torch.cat([torch.relu(x), torch.relu(-x)], dim=-1)
    return torch.tanh(x)


def orthogonal_init_(linear: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(linear.weight, gain)
    nn.init.zeros_(linear.bias)
    return linear


class ExpertLinear(nn.Module):
    """``E`` independent linear layers stored as one stacked tensor.

    The weight is ``(E, in_features, out_features)`` so that all experts run in one batched matmul.
    Activations use the expert-major layout ``(E, N, features)``, which is what ``bmm`` wants; the
    networks transpose to ``(N, E, features)`` only where they expose features to users.
    """

    def __init__(self, n_experts: int, in_features: int, out_features: int, gain: float) -> None:
        super().__init__()
        self.n_experts = n_experts
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(n_experts, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(n_experts, out_features))
        with torch.no_grad():
            for e in range(n_experts):  # init only: each expert gets its own orthogonal matrix
                nn.init.orthogonal_(self.weight[e].T, gain)

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(N, in)`` (shared input) or ``(E, N, in)`` to ``(E, N, out)``."""
        if x.dim() == 2:
            return torch.matmul(x, self.weight) + self.bias.unsqueeze(1)
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight)

    def forward_grouped(self, x: Tensor, plan: DispatchPlan) -> Tensor:
        """Sparse dispatch: ``(R, in)`` expert-sorted rows → ``(R, out)``, each row through its own
        expert (see :mod:`sphere_rl.nn.dispatch`)."""
        return grouped_linear(x, self.weight, self.bias, plan)

    def extra_repr(self) -> str:
        return f"n_experts={self.n_experts}, in={self.in_features}, out={self.out_features}"


class _Trunk(nn.Module):
    """Linear → [LayerNorm] → activation, repeated for each hidden width.

    ``forward`` returns every hidden activation (post-activation), which the diagnostics and the
    layer-wise regularizer variants need; the last one is the input of the output head.
    Subclasses choose the layer types through :meth:`_linear` and :meth:`_norm`.
    """

    def __init__(
        self, in_dim: int, hidden: Sequence[int], activation: str, layer_norm: bool
    ) -> None:
        super().__init__()
        check_activation(activation)
        self.activation = activation
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()
        width_in = in_dim
        for width in hidden:
            self.linears.append(self._linear(width_in, width))
            self.norms.append(self._norm(width) if layer_norm else nn.Identity())
            width_in = width * activation_width_factor(activation)
        self.out_dim = width_in

    def _linear(self, width_in: int, width: int) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def _norm(self, width: int) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: Tensor) -> list[Tensor]:
        hidden = []
        for linear, norm in zip(self.linears, self.norms, strict=True):
            x = apply_activation(norm(linear(x)), self.activation)
            hidden.append(x)
        return hidden


class MLPTrunk(_Trunk):
    """A dense trunk: ``(N, in)`` → list of ``(N, d_l)`` hidden activations."""

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int],
        activation: str = "relu",
        layer_norm: bool = False,
    ) -> None:
        super().__init__(in_dim, hidden, activation, layer_norm)

    def _linear(self, width_in: int, width: int) -> nn.Module:
        return orthogonal_init_(nn.Linear(width_in, width), HIDDEN_GAIN)

    def _norm(self, width: int) -> nn.Module:
        return nn.LayerNorm(width, eps=LAYER_NORM_EPS)


class ExpertTrunk(_Trunk):
    """``E`` MLP towers with identical shapes, computed together (no Python loop over experts):
    ``(N, in)`` → list of ``(E, N, d_l)`` hidden activations."""

    def __init__(
        self,
        n_experts: int,
        in_dim: int,
        hidden: Sequence[int],
        activation: str = "relu",
        layer_norm: bool = False,
    ) -> None:
        self.n_experts = n_experts  # plain int: set before Module.__init__ is harmless
        super().__init__(in_dim, hidden, activation, layer_norm)

    @property
    def supports_grouped(self) -> bool:
        """Whether :meth:`forward_grouped` can run: every norm layer knows expert-sorted rows
        (plug-ins may insert their own per-expert layers)."""
        return all(
            isinstance(norm, nn.Identity) or hasattr(norm, "forward_grouped") for norm in self.norms
        )

    def forward_grouped(self, x: Tensor, plan: DispatchPlan) -> list[Tensor]:
        """Sparse dispatch: ``(R, in)`` expert-sorted rows → list of ``(R, d_l)`` activations."""
        hidden = []
        for linear, norm in zip(self.linears, self.norms, strict=True):
            x = linear.forward_grouped(x, plan)
            if not isinstance(norm, nn.Identity):
                x = norm.forward_grouped(x, plan)
            x = apply_activation(x, self.activation)
            hidden.append(x)
        return hidden

    def _linear(self, width_in: int, width: int) -> nn.Module:
        return ExpertLinear(self.n_experts, width_in, width, HIDDEN_GAIN)

    def _norm(self, width: int) -> nn.Module:
        # One LayerNorm per expert: its affine parameters are stacked like the weights.
        return ExpertLayerNorm(self.n_experts, width)


def set_layer_norm_eps_(module: nn.Module, eps: float) -> nn.Module:
    """Give every LayerNorm in ``module`` (per-expert ones included) the ε ``eps``."""
    for m in module.modules():
        if isinstance(m, nn.LayerNorm | ExpertLayerNorm):
            m.eps = eps
    return module


class ExpertLayerNorm(nn.Module):
    """LayerNorm over the feature axis with separate affine parameters per expert."""

    def __init__(self, n_experts: int, width: int, eps: float = LAYER_NORM_EPS) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(n_experts, 1, width))
        self.bias = nn.Parameter(torch.zeros(n_experts, 1, width))

    def forward(self, x: Tensor) -> Tensor:
        """``(E, N, d)`` → ``(E, N, d)``."""
        x = nn.functional.layer_norm(x, x.shape[-1:], eps=self.eps)
        return x * self.weight + self.bias

    def forward_grouped(self, x: Tensor, plan: DispatchPlan) -> Tensor:
        """``(R, d)`` expert-sorted rows (sparse dispatch), each with its expert's affine."""
        x = nn.functional.layer_norm(x, x.shape[-1:], eps=self.eps)
        return x * self.weight[plan.row_expert, 0] + self.bias[plan.row_expert, 0]
