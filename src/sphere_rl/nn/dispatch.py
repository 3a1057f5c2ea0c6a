"""Sparse top-k dispatch: run each expert only on the states routed to it.

With top-2 of 10 experts, dense evaluation spends 80% of the experts' FLOPs on activations that are
multiplied by a zero routing weight. Sparse dispatch instead lays the ``N·k`` (state, selected
expert) *pairs* out as *rows* sorted by expert, so that each expert's rows are one contiguous block,
and runs every expert layer as a grouped matmul: one matmul per expert on its own rows only. The cost
is proportional to ``N·k`` whatever the routing's balance (Top-K routing often sends most states to
the same few experts, which would defeat a fixed per-expert capacity).

:class:`DispatchPlan` holds the integer bookkeeping, :func:`grouped_linear` the layer; the mixture is
gathered back per state by :func:`combine_pairs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

import torch
from torch import Tensor


@dataclass(frozen=True)
class DispatchPlan:
    """Where each (state, selected expert) pair sits in the expert-sorted rows.

    Attributes:
        top_index: ``(N, k)`` selected experts of each state.
        pair_row: ``(N, k)`` row of each pair.
        row_pair: ``(R,)`` flat pair index ``n·k + a`` of each row (the inverse permutation).
        row_state: ``(R,)`` state of each row, ``R = N·k``.
        row_expert: ``(R,)`` expert of each row (non-decreasing).
        offsets: ``E + 1`` host integers: expert ``e`` owns rows ``offsets[e]:offsets[e + 1]``.
    """

    top_index: Tensor
    pair_row: Tensor
    row_pair: Tensor
    row_state: Tensor
    row_expert: Tensor
    offsets: tuple[int, ...]

    @property
    def n_states(self) -> int:
        return self.top_index.shape[0]

    @property
    def n_experts(self) -> int:
        return len(self.offsets) - 1

    def expert_rows(self) -> list[tuple[int, int, int]]:
        """``(expert, start, stop)`` of every expert that received at least one state."""
        bounds = zip(self.offsets[:-1], self.offsets[1:], strict=True)
        return [(e, start, stop) for e, (start, stop) in enumerate(bounds) if stop > start]


def plan_dispatch(top_index: Tensor, n_experts: int) -> DispatchPlan:
    """Sort the ``(N, k)`` selected experts into expert-major rows (states in order within an
    expert). The per-expert counts are read back to the host once: they set the matmul shapes."""
    n, k = top_index.shape
    flat = top_index.reshape(-1)  # (N·k,) pairs, state-major
    order = torch.argsort(flat, stable=True)  # row → pair
    pair_row = torch.empty_like(order)
    pair_row[order] = torch.arange(order.numel(), device=order.device)
    counts = torch.bincount(flat, minlength=n_experts).tolist()
    return DispatchPlan(
        top_index=top_index,
        pair_row=pair_row.view(n, k),
        row_pair=order,
        row_state=order // k,
        row_expert=flat[order],
        offsets=(0, *accumulate(counts)),
    )


class _GroupedLinear(torch.autograd.Function):
    """``out[rows of e] = x[rows of e] @ weight[e] + bias[e]`` for every expert ``e``.

    A grouped GEMM: PyTorch has none for every dtype on the CPU, and a loop over the (few) experts
    with ``out=`` views keeps each matmul on contiguous rows without copying weights; experts with no
    rows cost nothing and get zero gradients, as in the dense path.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, plan: DispatchPlan) -> Tensor:
        out = x.new_empty(x.shape[0], weight.shape[-1])
        for e, start, stop in plan.expert_rows():
            torch.addmm(bias[e], x[start:stop], weight[e], out=out[start:stop])
        ctx.save_for_backward(x, weight)
        ctx.plan = plan
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b, _ = ctx.needs_input_grad
        grad_out = grad_out.contiguous()
        grad_x = torch.empty_like(x) if need_x else None
        grad_w = torch.empty_like(weight) if need_w else None
        grad_b = weight.new_empty(weight.shape[0], weight.shape[-1]) if need_b else None
        bounds = zip(ctx.plan.offsets[:-1], ctx.plan.offsets[1:], strict=True)
        idle = [e for e, (start, stop) in enumerate(bounds) if stop == start]
        for e in idle:  # experts that received no state: zero gradient, as in the dense path
            for grad in (grad_w, grad_b):
                if grad is not None:
                    grad[e].zero_()
        for e, start, stop in ctx.plan.expert_rows():
            g = grad_out[start:stop]
            if need_x:
                torch.mm(g, weight[e].T, out=grad_x[start:stop])
            if need_w:
                torch.mm(x[start:stop].T, g, out=grad_w[e])
            if need_b:
                torch.sum(g, 0, out=grad_b[e])
        return grad_x, grad_w, grad_b, None


def grouped_linear(x: Tensor, weight: Tensor, bias: Tensor, plan: DispatchPlan) -> Tensor:
    """Each row through its own expert's linear map.

    Args:
        x: ``(R, in)`` rows in the plan's expert-sorted order.
        weight: ``(E, in, out)`` stacked expert weights.
        bias: ``(E, out)``.
        plan: the dispatch plan.

    Returns:
        ``(R, out)``.
    """
    return _GroupedLinear.apply(x.contiguous(), weight, bias, plan)


def combine_pairs(plan: DispatchPlan, weights: Tensor, row_values: Tensor) -> Tensor:
    """Weighted mixture ``Σ_a w_a v_a`` of each state's selected experts.

    Args:
        plan: the dispatch plan.
        weights: ``(N, k)`` routing weights of the pairs.
        row_values: ``(R, d)`` expert outputs per row.

    Returns:
        ``(N, d)``.
    """
    return torch.bmm(weights.unsqueeze(1), row_values[plan.pair_row]).squeeze(1)


def scatter_dense(plan: DispatchPlan, row_values: Tensor) -> Tensor:
    """``(R, d)`` per-row values → ``(N, E, d)``, zeros for the experts a state did not select.

    Differentiable; the layout of the dense path's ``PolicyOutput.hidden`` entries.
    """
    n, e, d = plan.n_states, plan.n_experts, row_values.shape[-1]
    flat_index = plan.row_state * e + plan.row_expert
    dense = row_values.new_zeros(n * e, d).index_put((flat_index,), row_values)
    return dense.view(n, e, d)


@dataclass
class RoutedExperts:
    """The selected experts' hidden activations, as sparse dispatch computed them.

    Attributes:
        plan: where each pair sits.
        weights: ``(N, k)`` routing weights of the pairs (differentiable).
        row_weight: ``(R,)`` the same weights per row (differentiable).
        hidden: one ``(R, d_l)`` tensor per hidden layer (post-activation).
    """

    plan: DispatchPlan
    weights: Tensor
    row_weight: Tensor
    hidden: list[Tensor]


class DenseExpertHidden(Sequence):
    """``PolicyOutput.hidden`` of a sparse forward pass: ``(N, E, d_l)`` per layer, built on first
    access (zeros for unselected experts, which were never computed), so code reading the dense
    layout keeps working while the SPHERE penalty reads :class:`RoutedExperts` directly."""

    def __init__(self, routed: RoutedExperts) -> None:
        self._routed = routed
        self._cache: dict[int, Tensor] = {}

    def __len__(self) -> int:
        return len(self._routed.hidden)

    def __getitem__(self, layer):  # int → Tensor, slice → list
        if isinstance(layer, slice):
            return [self[i] for i in range(len(self))[layer]]
        layer = range(len(self))[layer]  # normalises negative indices, raises IndexError
        if layer not in self._cache:
            self._cache[layer] = scatter_dense(self._routed.plan, self._routed.hidden[layer])
        return self._cache[layer]
