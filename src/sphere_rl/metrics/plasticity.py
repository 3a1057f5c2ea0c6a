"""Plasticity diagnostics: feature ranks, dormant units, weight drift, gradients, routing.

Feature conventions: every hidden layer is summarised by one ``(N, D)`` feature matrix
(:func:`layer_features`). For a dense actor it is the layer's activations; for an MoE actor it is
the routing-weighted concatenation ``Φ[n] = [g_1 h_1 | … | g_E h_E]`` of the experts' activations, the
features the SPHERE penalty acts on, so that an expert's directions count only where it is used.
Unit-level statistics (dormant, active) instead look at every expert unit on every state, because a
unit's activity is a property of its own function, whether or not the gate uses it on that state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sphere_rl.metrics.ntk import entk
from sphere_rl.metrics.spectral import effective_rank, srank
from sphere_rl.nn.layers import MLPTrunk
from sphere_rl.nn.moe import dense_dispatch
from sphere_rl.nn.policy import PolicyOutput
from sphere_rl.regularizers import routing_weighted_features

DORMANT_THRESHOLDS = (0.0, 0.1)


def layer_features(output: PolicyOutput) -> list[Tensor]:
    """One ``(N, D_l)`` feature matrix per hidden layer (see the module docstring).

    Args:
        output: an actor's forward pass.

    Returns:
        Dense: ``hidden[l]`` ``(N, d_l)``. MoE: ``(N, E·d_l)`` routing-weighted concatenation.
    """
    if output.probs is None:
        return list(output.hidden)
    return [routing_weighted_features(output.probs, h) for h in output.hidden]


def _forward(actor_or_output: nn.Module | PolicyOutput, obs: Tensor | None) -> PolicyOutput:
    if isinstance(actor_or_output, PolicyOutput):
        return actor_or_output
    if obs is None:
        raise ValueError("obs is required when an actor (not a PolicyOutput) is given")
    with torch.no_grad():
        return actor_or_output(obs)


def sphere_proxy_rank(
    actor_or_output: nn.Module | PolicyOutput, obs: Tensor | None = None
) -> float:
    """``r_e(A_last^exp)``, the cheap proxy of ``r_e(K)`` that SPHERE regularises.

    ``A = ΦᵀΦ / T`` with ``Φ (T, E·d)`` the routing-weighted last-layer expert features (for a dense
    actor, its last hidden features). ``r_e`` is scale-invariant and ``ΦΦᵀ`` has the same non-zero
    spectrum, so this is ``effective_rank(Φ, features=True)``, which diagonalises the ``T×T`` Gram
    when ``E·d > T``.

    Args:
        actor_or_output: an actor (then ``obs`` is required) or a forward pass already computed.
        obs: ``(T, obs_dim)`` states.

    Returns:
        The effective rank of ``A``.
    """
    features = layer_features(_forward(actor_or_output, obs))[-1]
    return effective_rank(features, features=True)


def _unit_activity(activations: Tensor) -> Tensor:
    """Mean ``|h|`` over states of each unit: ``(N, d)`` → ``(1, d)``; ``(N, E, d)`` → ``(E, d)``.

    Each row is one layer whose units are compared with each other (an expert is its own layer).
    """
    activity = activations.detach().abs().mean(0)
    return activity.unsqueeze(0) if activity.dim() == 1 else activity


def dormant_ratio(activations: Tensor, tau: float = 0.0) -> float:
    """Fraction of dormant units (ReDo, Sokar et al. 2023).

    A unit's score is its mean ``|activation|`` over the batch divided by the average of that over
    the units of its layer; the unit is dormant if the score is ``≤ tau``. ``tau = 0`` counts units
    that are exactly zero on every state (dead ReLUs). A layer whose units are all zero is entirely
    dormant.

    Args:
        activations: ``(N, d)`` (one layer) or ``(N, E, d)`` (MoE experts, each normalised by its
            own layer mean).
        tau: threshold on the normalised score.

    Returns:
        Dormant units / all units, in ``[0, 1]``.
    """
    activity = _unit_activity(activations)
    layer_mean = activity.mean(-1, keepdim=True)
    score = torch.where(layer_mean > 0, activity / layer_mean.clamp_min(1e-30), 0.0)
    return float((score <= tau).float().mean())


def active_fraction(activations: Tensor) -> float:
    """Average over states of the fraction of units with a non-zero activation.

    This is the activation density (about 0.5 for a healthy ReLU layer). The complementary
    "never active on the batch" fraction is :func:`dormant_ratio` with ``tau = 0``.

    Args:
        activations: ``(N, d)`` or ``(N, E, d)``.
    """
    return float(activations.detach().ne(0).float().mean())


def weight_norm(module: nn.Module) -> float:
    """Global L2 norm ``sqrt(Σ_p ‖p‖²)`` over all parameters."""
    with torch.no_grad():
        return float(sum(p.double().square().sum() for p in module.parameters()) ** 0.5)


def distance_from_init(
    module: nn.Module, initial_state: Mapping[str, Tensor], relative: bool = False
) -> float:
    """L2 distance ``sqrt(Σ_p ‖p − p_0‖²)`` from saved initial weights.

    Args:
        module: the current network.
        initial_state: a ``state_dict()`` saved at initialisation (cloned); only parameters present
            in it with the same shape count.
        relative: divide by the norm ``sqrt(Σ_p ‖p_0‖²)`` of those initial parameters.
    """
    distance = torch.zeros((), dtype=torch.float64)
    initial = torch.zeros((), dtype=torch.float64)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p0 = initial_state.get(name)
            if p0 is not None and p0.shape == p.shape:
                p0 = p0.to(p.device, torch.float64)
                # In place on one float64 copy: the same values as (p - p0)² computed out of
                # place, with one temporary the size of ``p`` instead of three (memory peak).
                difference = p.to(torch.float64, copy=True).sub_(p0).square_()
                distance += difference.sum().cpu()
                del difference
                initial += p0.square().sum().cpu()
    if relative:
        return float(distance.sqrt() / initial.sqrt().clamp_min(1e-30))
    return float(distance.sqrt())


def grad_norm(module: nn.Module, loss: Tensor | None = None) -> float:
    """Global L2 norm of the gradient.

    Args:
        module: the network.
        loss: if given, the norm of ``∂loss/∂θ`` over parameters requiring grad (computed with
            ``torch.autograd.grad``, so ``.grad`` is untouched and the graph is kept); otherwise the
            norm of the current ``.grad`` fields (parameters without one count as zero).
    """
    params = [p for p in module.parameters() if p.requires_grad]
    if loss is None:
        grads = [p.grad for p in params]
    else:
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    squares = [g.detach().double().square().sum() for g in grads if g is not None]
    return float(torch.stack(squares).sum().sqrt()) if squares else 0.0


@dataclass(frozen=True)
class RoutingStats:
    """Routing statistics of an MoE gate on a batch.

    Attributes:
        load: ``(E,)`` mean routing weight of each expert (sums to 1).
        selection_frequency: ``(E,)`` fraction of states on which each expert is selected.
        entropy: mean over states of the routing entropy ``-Σ_e g_e log g_e`` (nats); ``log k`` for
            uniform top-k weights, 0 for one-hot routing.
        load_entropy: entropy of ``load`` (nats); ``log E`` when all experts carry equal load.
        unused_fraction: fraction of experts never selected on the batch.
    """

    load: Tensor
    selection_frequency: Tensor
    entropy: float
    load_entropy: float
    unused_fraction: float


def _entropy(p: Tensor) -> Tensor:
    """``-Σ p log p`` along the last axis with ``0 log 0 = 0``."""
    return -torch.special.xlogy(p, p).sum(-1)


def routing_stats(probs: Tensor, top_k: int | None = None) -> RoutingStats:
    """Load, selection frequency and entropy of routing weights.

    Args:
        probs: ``(N, E)`` routing weights (rows sum to 1).
        top_k: if given, an expert counts as selected on a state when it is among the ``top_k``
            largest weights (useful for dense routing, where every weight is positive); otherwise
            when its weight is positive.
    """
    probs = probs.detach().double()
    if top_k is None:
        selected = probs > 0
    else:
        index = probs.topk(top_k, dim=-1).indices
        selected = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, index, True)
    load = probs.mean(0)
    frequency = selected.double().mean(0)
    return RoutingStats(
        load=load,
        selection_frequency=frequency,
        entropy=float(_entropy(probs).mean()),
        load_entropy=float(_entropy(load / load.sum())),
        unused_fraction=float((frequency == 0).double().mean()),
    )


def _unit_metrics(prefix: str, activations: Tensor) -> dict[str, float]:
    report = {
        f"dormant_{tau:g}/{prefix}": dormant_ratio(activations, tau) for tau in DORMANT_THRESHOLDS
    }
    report[f"active_fraction/{prefix}"] = active_fraction(activations)
    return report


def plasticity_report(
    actor: nn.Module,
    obs: Tensor,
    initial_state: Mapping[str, Tensor] | None = None,
    include_entk: bool = True,
    *,
    eig_dtype: torch.dtype = torch.float64,
) -> dict[str, float]:
    """All plasticity metrics of an actor on a batch of states, as a flat ``{key: value}`` dict.

    Layers are numbered from 0 (input side). Keys (``l`` = layer, ``e`` = expert):

    * ``entk/effective_rank``: ``r_e(K)`` of the full ``(N·A)²`` eNTK (if ``include_entk``);
      ``entk/mean_diagonal``: ``tr K / (N·A)``, the mean squared Jacobian norm (update scale).
    * ``proxy/effective_rank``: ``r_e(A_last^exp)`` (:func:`sphere_proxy_rank`).
    * ``feature_rank/layer_l``, ``srank/layer_l``: effective rank and srank (δ = 0.01) of the
      layer features (:func:`layer_features`).
    * ``dormant_0/layer_l``, ``dormant_0.1/layer_l``, ``active_fraction/layer_l``: unit statistics
      of the hidden activations; MoE actors also get ``…/gate_layer_l`` for the gating network.
    * ``weights/norm``; with ``initial_state``: ``weights/distance_from_init`` and
      ``weights/relative_distance_from_init`` (divided by the initial norm).
    * ``grad/norm``: norm of the current ``.grad`` (only when some parameter has one).
    * MoE only: ``routing/entropy``, ``routing/load_entropy``, ``routing/unused_fraction``,
      ``routing/load_e{e}``, ``routing/select_freq_e{e}`` (:func:`routing_stats`, selection by the
      actor's ``top_k``).

    The actor's train/eval mode, parameters, ``.grad`` and the global RNG state are unchanged;
    everything except the eNTK runs under ``torch.no_grad``.

    Args:
        actor: a ``sphere_rl`` actor (dense or MoE).
        obs: ``(N, obs_dim)`` states.
        initial_state: ``state_dict`` saved at initialisation, for the drift metrics.
        include_entk: compute the eNTK effective rank (the expensive part: a few seconds for
            ``N = 256`` states on the paper-size MoE actor, plus the ``(N·A)²`` eigensolve).
        eig_dtype: dtype of the eNTK eigensolve (float64 default; float32 is faster for large
            ``N·A``, see ``docs/metrics.md``).
    """
    devices = []
    if obs.device.type == "cuda":  # fork_rng wants CUDA device indices
        devices = [
            obs.device.index if obs.device.index is not None else torch.cuda.current_device()
        ]
    # Dense dispatch: unit statistics look at every expert on every state.
    with torch.random.fork_rng(devices=devices), torch.no_grad(), dense_dispatch(actor):
        output = actor(obs)
        report: dict[str, float] = {}
        if include_entk:
            kernel = entk(actor, obs)
            report["entk/effective_rank"] = effective_rank(kernel, eig_dtype=eig_dtype)
            report["entk/mean_diagonal"] = float(kernel.diagonal().double().mean())
            del kernel
        features = layer_features(output)
        report["proxy/effective_rank"] = effective_rank(features[-1], features=True)
        for layer, (feats, hidden) in enumerate(zip(features, output.hidden, strict=True)):
            report[f"feature_rank/layer_{layer}"] = effective_rank(feats, features=True)
            report[f"srank/layer_{layer}"] = float(srank(feats))
            report.update(_unit_metrics(f"layer_{layer}", hidden))
        gate = getattr(actor, "gate", None)
        if output.probs is not None and isinstance(gate, MLPTrunk):
            for layer, hidden in enumerate(gate(obs)):
                report.update(_unit_metrics(f"gate_layer_{layer}", hidden))
        report["weights/norm"] = weight_norm(actor)
        if initial_state is not None:
            report["weights/distance_from_init"] = distance_from_init(actor, initial_state)
            report["weights/relative_distance_from_init"] = distance_from_init(
                actor, initial_state, relative=True
            )
        if any(p.grad is not None for p in actor.parameters()):
            report["grad/norm"] = grad_norm(actor)
        if output.probs is not None:
            report.update(_routing_metrics(output.probs, getattr(actor, "top_k", None)))
    return report


def _routing_metrics(probs: Tensor, top_k: int | None) -> dict[str, float]:
    stats = routing_stats(probs, top_k)
    report = {
        "routing/entropy": stats.entropy,
        "routing/load_entropy": stats.load_entropy,
        "routing/unused_fraction": stats.unused_fraction,
    }
    for e, (load, freq) in enumerate(zip(stats.load, stats.selection_frequency, strict=True)):
        report[f"routing/load_e{e}"] = float(load)
        report[f"routing/select_freq_e{e}"] = float(freq)
    return report
