"""Policy-level Mixture-of-Experts actors: Top-K, Dense and DS-MoE.

Each expert is a full MLP tower ``obs → hidden… → action mean``; a separate gating MLP with the same
hidden widths maps ``obs`` to ``E`` logits; the action mean is ``Σ_e g_e(x) μ_e(x)``. All experts
are stored as stacked tensors (:class:`~sphere_rl.nn.layers.ExpertLinear`) and evaluated in one
batched matmul per layer. The variants differ only in how logits become routing weights ``g``:

* Top-K: softmax over the ``k`` largest logits (divided by the temperature), zeros elsewhere. By
  default only the selected experts are computed (``dispatch="sparse"``, :mod:`sphere_rl.nn.dispatch`);
  ``dispatch="dense"`` evaluates every expert on every state and is the reference implementation.
* Dense: softmax over all logits.
* DS-MoE ("dense training, sparse inference", Pan et al. 2024): dense routing while training and
  top-k routing at inference. Training and rollout collection use the dense mixture so that PPO's
  importance ratios refer to the policy that acted; deterministic evaluation uses the sparse one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from sphere_rl.nn.dispatch import (
    DenseExpertHidden,
    RoutedExperts,
    combine_pairs,
    plan_dispatch,
)
from sphere_rl.nn.layers import (
    POLICY_HEAD_GAIN,
    ExpertLinear,
    ExpertTrunk,
    MLPTrunk,
    check_hidden_sizes,
    check_positive_int,
    orthogonal_init_,
)
from sphere_rl.nn.mlp import DEFAULT_HIDDEN
from sphere_rl.nn.policy import GaussianActor, PolicyOutput

DISPATCH_MODES = ("sparse", "dense")


def topk_select(logits: Tensor, top_k: int, temperature: float = 1.0) -> tuple[Tensor, Tensor]:
    """The ``k`` largest logits' experts and their softmax weights: ``(N, E)`` → ``(weights (N, k),
    index (N, k))``."""
    top_values, top_index = logits.topk(top_k, dim=-1)
    return torch.softmax(top_values / temperature, dim=-1), top_index


def topk_routing(logits: Tensor, top_k: int, temperature: float = 1.0) -> Tensor:
    """Top-k softmax routing.

    Args:
        logits: ``(N, E)`` gate logits.
        top_k: number of experts selected per row.
        temperature: softmax temperature (> 0).

    Returns:
        ``(N, E)`` weights with exactly ``top_k`` non-zeros per row summing to 1. Gradients reach
        only the selected logits, exactly as autograd sees the scatter of the top-k softmax.
    """
    weights, top_index = topk_select(logits, top_k, temperature)
    return torch.zeros_like(logits).scatter(-1, top_index, weights)


def dense_routing(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Softmax over all ``E`` experts: ``(N, E)`` → ``(N, E)``."""
    return torch.softmax(logits / temperature, dim=-1)


class _MoEActor(GaussianActor):
    """Shared structure of the MoE actors; subclasses choose the routing in :meth:`route`."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        n_experts: int = 10,
        top_k: int = 2,
        hidden: Sequence[int] = DEFAULT_HIDDEN,
        temperature: float = 1.0,
        layer_norm: bool = False,
        activation: str = "relu",
    ) -> None:
        super().__init__(obs_dim, act_dim)
        check_positive_int("n_experts", n_experts)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= n_experts:
            raise ValueError(
                f"top_k must be an integer in [1, n_experts={n_experts}], got {top_k!r}"
            )
        if not (isinstance(temperature, int | float) and temperature > 0):
            raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
        self.hidden_sizes = check_hidden_sizes(hidden)
        self.n_experts = n_experts
        self.top_k = top_k
        self.temperature = float(temperature)
        self.experts = ExpertTrunk(n_experts, obs_dim, self.hidden_sizes, activation, layer_norm)
        self.expert_head = ExpertLinear(n_experts, self.experts.out_dim, act_dim, POLICY_HEAD_GAIN)
        self.gate = MLPTrunk(obs_dim, self.hidden_sizes, activation, layer_norm)
        self.gate_head = orthogonal_init_(torch.nn.Linear(self.gate.out_dim, n_experts), 0.01)

    def route(self, logits: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, obs: Tensor) -> PolicyOutput:
        """``(N, obs_dim)`` → :class:`PolicyOutput` with ``probs``/``logits`` ``(N, E)``, experts'
        hidden activations ``(N, E, d)`` and the mixed mean ``(N, A)``."""
        expert_hidden = self.experts(obs)  # list of (E, N, d)
        expert_means = self.expert_head(expert_hidden[-1])  # (E, N, A)
        logits = self.gate_head(self.gate(obs)[-1])
        probs = self.route(logits)
        mean = torch.einsum("ne,ena->na", probs, expert_means)
        return PolicyOutput(
            mean=mean,
            log_std=self.log_std,
            hidden=[h.transpose(0, 1) for h in expert_hidden],
            logits=logits,
            probs=probs,
        )


class TopKMoEActor(_MoEActor):
    """The paper's policy-level Top-K MoE actor (E=10, k=2, 3×256 ReLU experts and gate).

    Args:
        obs_dim, act_dim: observation and action sizes (>= 1).
        n_experts: number of expert towers ``E`` (>= 1).
        top_k: experts mixed per state, in ``[1, E]``.
        hidden: hidden widths shared by each expert and the gate.
        temperature: routing softmax temperature (> 0).
        layer_norm: LayerNorm before each hidden activation (experts and gate).
        activation: ``"relu"``, ``"crelu"`` or ``"tanh"``.
        dispatch: ``"sparse"`` computes each expert only on the states routed to it (about ``k/E``
            of the dense FLOPs); ``"dense"`` computes every expert on every state. Both give the
            same outputs and gradients up to float rounding; the attribute may be changed at any
            time (see :func:`dense_dispatch`). Under ``torch.func`` transforms the dense path runs;
            the sparse path's backward is first-order only (no ``create_graph``, no
            ``is_grads_batched``): use ``dispatch="dense"`` for those.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        n_experts: int = 10,
        top_k: int = 2,
        hidden: Sequence[int] = DEFAULT_HIDDEN,
        temperature: float = 1.0,
        layer_norm: bool = False,
        activation: str = "relu",
        dispatch: str = "sparse",
    ) -> None:
        super().__init__(
            obs_dim, act_dim, n_experts, top_k, hidden, temperature, layer_norm, activation
        )
        if dispatch not in DISPATCH_MODES:
            raise ValueError(f"dispatch must be one of {DISPATCH_MODES}, got {dispatch!r}")
        self.dispatch = dispatch

    def route(self, logits: Tensor) -> Tensor:
        return topk_routing(logits, self.top_k, self.temperature)

    def forward(self, obs: Tensor) -> PolicyOutput:
        # torch.func transforms (jacrev, vmap) cannot see through the grouped matmul's hand-written
        # backward; the dense path computes the same function.
        if (
            self.dispatch == "dense"
            or not self.experts.supports_grouped
            or torch._C._are_functorch_transforms_active()
        ):
            return super().forward(obs)
        logits = self.gate_head(self.gate(obs)[-1])
        weights, top_index = topk_select(logits, self.top_k, self.temperature)
        plan = plan_dispatch(top_index, self.n_experts)
        row_hidden = self.experts.forward_grouped(obs[plan.row_state], plan)  # list of (R, d)
        row_means = self.expert_head.forward_grouped(row_hidden[-1], plan)  # (R, A)
        row_weight = weights.reshape(-1)[plan.row_pair]
        routed = RoutedExperts(plan, weights, row_weight, row_hidden)
        return PolicyOutput(
            mean=combine_pairs(plan, weights, row_means),
            log_std=self.log_std,
            hidden=DenseExpertHidden(routed),
            logits=logits,
            probs=torch.zeros_like(logits).scatter(-1, top_index, weights),
            routed=routed,
        )

    def extra_repr(self) -> str:
        return f"dispatch={self.dispatch!r}"


@contextmanager
def dense_dispatch(module: nn.Module) -> Iterator[None]:
    """Temporarily evaluate every Top-K MoE actor inside ``module`` densely.

    For code that needs every expert's activation on every state (unit-level diagnostics, the
    structured eNTK, which expects the state axis in every layer); the previous setting returns on
    exit.
    """
    actors = [m for m in module.modules() if isinstance(m, TopKMoEActor)]
    saved = [m.dispatch for m in actors]
    for m in actors:
        m.dispatch = "dense"
    try:
        yield
    finally:
        for m, mode in zip(actors, saved, strict=True):
            m.dispatch = mode


class DenseMoEActor(_MoEActor):
    """Softmax over all experts (``top_k`` is accepted for a uniform signature but unused)."""

    def route(self, logits: Tensor) -> Tensor:
        return dense_routing(logits, self.temperature)


class DSMoEActor(_MoEActor):
    """Dense training, sparse (top-k) inference.

    In ``train()`` mode the mixture is dense; in ``eval()`` mode it is top-k. Pass
    ``sparse=True/False`` to :meth:`forward` to override the mode for one call.
    """

    def forward(self, obs: Tensor, sparse: bool | None = None) -> PolicyOutput:
        self._sparse = (not self.training) if sparse is None else sparse
        return super().forward(obs)

    def route(self, logits: Tensor) -> Tensor:
        if self._sparse:
            return topk_routing(logits, self.top_k, self.temperature)
        return dense_routing(logits, self.temperature)
