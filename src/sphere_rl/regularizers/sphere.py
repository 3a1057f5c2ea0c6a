"""The SPHERE penalty and its ablation variants.

For ``T`` states and features ``Φ ∈ R^{T×D}``, ``A = ΦᵀΦ / T`` and

    L_SPHERE(Φ) = ‖A − (tr A / D) I_D‖_F² = ‖A‖_F² − (tr A)² / D,

which is zero iff ``A`` is a multiple of the identity: it penalises anisotropy of the feature
second-moment matrix, not its scale. When ``D > T`` the ``T×T`` Gram ``ΦΦᵀ/T`` has the same non-zero
spectrum (hence the same Frobenius norm and trace), so it is used instead: the cost is
``O(T² D)`` either way but the matrix formed is the smaller one.

The ``gradient_factor`` ablation applies the same penalty to the other Kronecker factor of the last
expert layer, ``G = ΨᵀΨ / T``, whose rows are the back-propagated per-sample cotangents at the
experts' outputs (see :func:`gradient_factor_features`).

After sparse top-k dispatch (:mod:`sphere_rl.nn.dispatch`) the routing-weighted features are zero
outside each state's ``k`` selected experts, so the ``T×T`` Gram is a sum over experts of the Grams
of the states each expert served: :func:`routed_sphere_penalty` forms those per-expert blocks (``k²/E``
of the dense cost when routing is balanced, never more) and adds them into the ``T×T`` Gram. Same
value, same gradients.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sphere_rl.nn.dispatch import DispatchPlan
from sphere_rl.nn.policy import PolicyOutput
from sphere_rl.vocab import SPHERE_VARIANTS

VARIANTS = SPHERE_VARIANTS  # defined in sphere_rl.vocab, which the configuration validates against


def sphere_penalty(phi: Tensor, gram: str = "auto") -> Tensor:
    """Anisotropy of the feature second moment.

    Args:
        phi: ``(..., T, D)`` features; leading dimensions are independent batches (e.g. experts).
        gram: ``"auto"`` (the smaller Gram), ``"samples"`` (``T×T``) or ``"features"`` (``D×D``);
            all give the same value, the choice only changes cost.

    Returns:
        ``(...)`` penalty ``‖A‖_F² − (tr A)²/D`` with ``A = ΦᵀΦ/T``. Differentiable.
    """
    t, d = phi.shape[-2], phi.shape[-1]
    if gram not in ("auto", "samples", "features"):
        raise ValueError(f"gram must be 'auto', 'samples' or 'features', got {gram!r}")
    if gram == "samples" or (gram == "auto" and d > t):
        gram = phi @ phi.transpose(-1, -2) / t  # (..., T, T)
    else:
        gram = phi.transpose(-1, -2) @ phi / t  # (..., D, D)
    frobenius_sq = gram.square().sum(dim=(-2, -1))
    trace = gram.diagonal(dim1=-2, dim2=-1).sum(-1)
    return frobenius_sq - trace.square() / d


def routed_sphere_penalty(plan: DispatchPlan, row_weight: Tensor, row_features: Tensor) -> Tensor:
    """:func:`sphere_penalty` of the routing-weighted concatenated features, from sparse dispatch.

    Args:
        plan: the dispatch plan (``T`` states, ``E`` experts, ``R = T·k`` expert-sorted rows).
        row_weight: ``(R,)`` routing weight of each row.
        row_features: ``(R, d)`` expert activations per row.

    Returns:
        Scalar, equal to ``sphere_penalty(routing_weighted_features(probs, h))`` with ``D = E·d``.
        Cost ``O(Σ_e n_e² d)`` (``n_e`` states routed to expert ``e``) instead of ``O(T² E d)``.
    """
    t, d = plan.n_states, row_features.shape[-1]
    phi = row_weight.unsqueeze(-1) * row_features  # (R, d)
    # Rows of different experts are orthogonal in the concatenated layout: Gram = Σ_e Φ_e Φ_eᵀ.
    blocks, targets = [], []
    for _, start, stop in plan.expert_rows():
        block = phi[start:stop]
        blocks.append((block @ block.T).reshape(-1))
        state = plan.row_state[start:stop]
        targets.append((state.unsqueeze(-1) * t + state).reshape(-1))
    gram = phi.new_zeros(t * t).index_add(0, torch.cat(targets), torch.cat(blocks) / t)
    trace = phi.square().sum() / t
    return gram.square().sum() - trace.square() / (plan.n_experts * d)


def routing_weighted_features(probs: Tensor, expert_features: Tensor) -> Tensor:
    """Concatenate the routing-weighted features of all experts.

    Args:
        probs: ``(T, E)`` routing weights ``g_e(x)`` (zero for unselected experts).
        expert_features: ``(T, E, d)`` expert activations ``h_e(x)``.

    Returns:
        ``Φ`` of shape ``(T, E·d)`` with row ``[g_1 h_1 | g_2 h_2 | … | g_E h_E]``.
    """
    weighted = probs.unsqueeze(-1) * expert_features
    return weighted.reshape(weighted.shape[0], -1)


def gate_penalty(probs: Tensor) -> Tensor:
    """The release's gating variant: SPHERE on the routing matrix ``P (T×E)``, divided by ``E``."""
    return sphere_penalty(probs) / probs.shape[-1]


def per_expert_penalty(probs: Tensor, expert_features: Tensor) -> Tensor:
    """Ablation: one penalty per expert on ``g_e h_e``, summed (no cross-expert blocks)."""
    weighted = (probs.unsqueeze(-1) * expert_features).transpose(0, 1)  # (E, T, d)
    return sphere_penalty(weighted).sum()


def gradient_factor_features(output: PolicyOutput, sample_loss: Tensor) -> Tensor:
    """``Ψ``: per-sample output cotangents of the last expert layer, concatenated like ``Φ``.

    Row ``i`` is ``[∂ℓ_i/∂μ_1(x_i) | … | ∂ℓ_i/∂μ_E(x_i)]``, the cotangents that back-propagation
    delivers to each expert's output ``μ_e``. Since the mean is ``Σ_e g_e μ_e``, this equals
    ``[g_1 c_i | … | g_E c_i]`` with ``c_i = ∂ℓ_i/∂mean_i``: the routing weight enters exactly once,
    as in ``Φ``, and is zero for unselected experts. All ``c_i`` come from ONE backward pass of
    ``Σ_i ℓ_i`` with respect to the ``(T, A)`` mean (samples are independent, so row ``i`` of that
    gradient is sample ``i``'s), taken with ``create_graph=True`` so that the penalty can itself be
    differentiated (double backward) — cheaper than per-sample ``torch.func`` Jacobians, and exact.

    Args:
        output: the actor's forward pass; ``output.mean`` must be part of ``sample_loss``'s graph.
        sample_loss: ``(T,)`` per-sample losses ``ℓ_i`` (e.g. PPO's clipped surrogate terms).

    Returns:
        ``(T, E·A)`` for MoE actors, ``(T, A)`` for dense ones (the plain cotangents).
    """
    (cotangent,) = torch.autograd.grad(sample_loss.sum(), output.mean, create_graph=True)
    if output.probs is None:
        return cotangent
    n_experts = output.probs.shape[-1]
    return routing_weighted_features(output.probs, cotangent.unsqueeze(1).expand(-1, n_experts, -1))


def _layer_features(output: PolicyOutput, layer: int) -> Tensor:
    """``Φ`` for one hidden layer: routing-weighted and concatenated for MoE, raw for dense."""
    hidden = output.hidden[layer]
    if output.probs is None:
        return hidden
    return routing_weighted_features(output.probs, hidden)


def sphere_loss(
    output: PolicyOutput, variant: str = "last", sample_loss: Tensor | None = None
) -> Tensor:
    """The SPHERE penalty of one actor forward pass.

    Args:
        output: the actor's :class:`~sphere_rl.nn.PolicyOutput` on a minibatch.
        variant: ``"last"`` (the paper's SPHERE: last hidden expert layer, routing-weighted,
            concatenated across experts), ``"all_layers"`` (the same on every hidden layer, summed),
            ``"per_expert"`` (per-expert penalties summed), ``"gate"`` (on the routing weights) or
            ``"gradient_factor"`` (on the gradient factor ``Ψ``, :func:`gradient_factor_features`).
            Dense actors support ``"last"``, ``"all_layers"`` (on their plain hidden features) and
            ``"gradient_factor"``.
        sample_loss: ``(T,)`` per-sample losses, needed by ``"gradient_factor"`` only.

    Returns:
        A scalar tensor.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if variant == "gradient_factor":
        if sample_loss is None:
            raise ValueError("variant 'gradient_factor' needs the per-sample losses (sample_loss)")
        return sphere_penalty(gradient_factor_features(output, sample_loss))
    layers = range(len(output.hidden)) if variant == "all_layers" else [-1]
    if variant in ("last", "all_layers") and output.routed is not None:
        routed = output.routed
        return sum(
            routed_sphere_penalty(routed.plan, routed.row_weight, routed.hidden[i]) for i in layers
        )
    if variant in ("last", "all_layers"):
        return sum(sphere_penalty(_layer_features(output, i)) for i in layers)
    if output.probs is None:
        raise ValueError(f"variant {variant!r} needs a Mixture-of-Experts actor (routing weights)")
    if variant == "per_expert":
        return per_expert_penalty(output.probs, output.expert_features)
    return gate_penalty(output.probs)
