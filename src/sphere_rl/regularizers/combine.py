"""How a regularizer's gradient is combined with the base (policy) loss's gradient.

SPHERE sets its strength relative to the policy loss rather than as a raw constant. The quantities,
named the same from the configuration to the logs (this is the one place that defines them):

* ``rho`` (ρ): a *ratio*, SPHERE's strength (``ExperimentConfig.rho``; with ``sphere_mode:
  fixed`` the same key is λ): how strong the penalty is relative to the policy loss (loss mode)
  or to the policy gradient's norm (grad mode).
* ``coef``: the number a regularizer asks for (``ActorRegularizer.coef``): λ in ``fixed`` mode,
  ρ in ``loss`` and ``grad`` mode. SPHERE's ``coef`` is ``ExperimentConfig.rho``; its separate
  gate penalty's is ``sphere_gating_ratio``.
* ``scale`` (s): the multiplier applied to the penalty on one minibatch, computed from ``coef``:

  * ``fixed``: ``s = λ``; the update follows ``∇(L_base + s L_reg)``.
  * ``loss``: ``s = ρ |L_base| / (L_reg + ε)``, treated as a constant (no gradient through the
    ratio); the update follows ``∇(L_base + s L_reg)``.
  * ``grad``: ``s = ρ ‖g_b‖ / (‖g_s‖ + ε)`` with ``g_b = ∇L_base`` and ``g_s = ∇L_reg``; the update
    is ``g_b + s g_s``, so the penalty's contribution always has norm ``ρ ‖g_b‖`` (the setting of
    the paper's HumanoidBench runs).

  The training log records each penalty's per-minibatch ``s`` (iteration mean) as
  ``reg/<name>_scale``, next to the penalty ``reg/<name>`` and, where gradients are combined
  apart, ``reg/<name>_cos`` (the cosine of ``g_b`` and ``g_s``). Runs written before this name
  logged the same number as ``reg/<name>_coef``; :mod:`sphere_rl.analysis.runs` reads both.

With ``pcgrad=True``, the release's order: the penalty gradient is first scaled (``s g_s``, of norm
``ρ ‖g_b‖`` in grad mode), then, if it conflicts with the base gradient (negative dot product), its
component along ``g_b`` is removed (Yu et al. 2020). The applied norm is therefore ``≤ ρ ‖g_b‖`` in
grad mode, ``≤ s ‖g_s‖`` otherwise. PCGrad needs the two gradients apart, so it costs a second
backward pass in every mode.

Host synchronisation (it costs time on a GPU): :func:`penalty_scale` and
:func:`combine_flat_gradients` stay on the device. :func:`combine_penalty_gradients` (PPO's path
for a regularizer in grad mode or with PCGrad, and behind :func:`combine_parameter_gradients`,
:func:`backward_penalties` and :func:`apply_regularized_gradients` in those modes) reads numbers
back to the host; its docstring lists them.

Several penalties, each with its own scale (SPHERE's feature and gate penalties in the release),
combine as ``g_b + Σ_i u_i`` (:func:`combine_penalty_gradients`).

:func:`apply_regularized_gradients` works on any list of parameters, so SPHERE can be added to any
PyTorch training loop, not only ours: compute both losses, call it, then ``optimizer.step()``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from sphere_rl.vocab import SPHERE_MODES

MODES = SPHERE_MODES  # defined in sphere_rl.vocab, which the configuration validates against
EPS = 1e-8


def _flat_grad(loss: Tensor, params: Sequence[Tensor], retain_graph: bool) -> Tensor:
    grads = torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True)
    return torch.cat(
        [
            (torch.zeros_like(p) if g is None else g).reshape(-1)
            for p, g in zip(params, grads, strict=True)
        ]
    )


def _owned(params: Sequence[Tensor], grads: Sequence[Tensor | None]) -> list[Tensor]:
    """Gradients safe to edit in place: zeros for ``None``, a copy where autograd handed the same
    buffer to two parameters."""
    seen: set[int] = set()
    owned = []
    for p, g in zip(params, grads, strict=True):
        if g is None:
            g = torch.zeros_like(p)
        elif g.data_ptr() in seen:
            g = g.clone()
        seen.add(g.data_ptr())
        owned.append(g)
    return owned


def _accumulate(params: Sequence[Tensor], flat: Tensor) -> None:
    offset = 0
    for p in params:
        n = p.numel()
        g = flat[offset : offset + n].view_as(p)
        p.grad = g.clone() if p.grad is None else p.grad + g
        offset += n


def penalty_scale(mode: str, coef: float, base_loss: Tensor, reg_loss: Tensor) -> Tensor:
    """The constant scale ``s`` that folds a penalty into the loss as ``L_base + s L_reg``.

    Args:
        mode: ``"fixed"`` (``s = λ = coef``) or ``"loss"`` (``s = ρ |L_base| / (L_reg + ε)``,
            ``ρ = coef``).
        coef: λ or ρ (see the module docstring).
        base_loss, reg_loss: scalar losses; only their values are read (``s`` carries no gradient).

    Returns:
        A 0-dim tensor (no host synchronisation).
    """
    if mode == "fixed":
        return torch.as_tensor(coef, dtype=reg_loss.dtype, device=reg_loss.device)
    if mode == "loss":
        return coef * base_loss.detach().abs() / (reg_loss.detach() + EPS)
    raise ValueError(f"penalty_scale needs mode 'fixed' or 'loss', got {mode!r}")


# The name this function had before ``scale`` was the one word for s.
penalty_coefficient = penalty_scale


def combine_flat_gradients(
    base_grad: Tensor,
    reg_grad: Tensor,
    rho: float,
    pcgrad: bool = False,
    scale: Tensor | float | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Grad-norm-ratio combination of two flat gradients.

    Args:
        base_grad: ``(P,)`` gradient of the base loss.
        reg_grad: ``(P,)`` gradient of the regularizer.
        rho: ρ, the target ratio of the applied penalty gradient's norm to ``‖base_grad‖``.
        pcgrad: after scaling, remove the component of the scaled penalty gradient along
            ``base_grad`` if the two conflict (the release's order: scale, then project).
        scale: a constant scale ``s`` (fixed and loss mode's) instead of the norm ratio.

    Returns:
        ``(combined (P,), stats)``: stats are 0-dim tensors (``cos``, ``scale`` = ``s``,
        ``base_grad_norm``, ``reg_grad_norm``), never read back to the host. The applied penalty
        gradient has norm ``rho · ‖base_grad‖`` (up to ``ε``), or less when PCGrad removed a
        conflicting component.
    """
    base_norm, reg_norm = base_grad.norm(), reg_grad.norm()
    dot = torch.dot(base_grad, reg_grad)
    if scale is None:
        scale = rho * base_norm / (reg_norm + EPS)
    scale = torch.as_tensor(scale, dtype=base_grad.dtype)
    applied = scale * reg_grad
    if pcgrad:
        # dot < 0 implies base_norm > 0; torch.where keeps the 0/0 of the other branch out and
        # avoids a host sync on the sign.
        along = torch.where(dot < 0, scale * dot / base_norm.square(), torch.zeros_like(dot))
        applied = applied - along * base_grad
    stats = {
        "cos": dot / (base_norm * reg_norm + EPS),
        "scale": scale,
        "base_grad_norm": base_norm,
        "reg_grad_norm": reg_norm,
    }
    return base_grad + applied, stats


def combine_parameter_gradients(
    base_grads: list[Tensor],
    reg_grads: list[Tensor | None],
    rho: float,
    pcgrad: bool = False,
    scale: Tensor | None = None,
) -> tuple[list[Tensor], dict[str, float]]:
    """:func:`combine_flat_gradients` on per-parameter gradients, without flattening them.

    The same rule, step for step (the flat function is the definition; a test keeps the two
    equal): it needs only ``‖g_b‖``, ``‖g_s‖`` and ``g_b·g_s``, then one in-place ``axpy`` per
    parameter, instead of concatenating millions of entries twice.

    Args:
        base_grads: gradients of the base loss, one per parameter; updated in place and returned.
        reg_grads: the regularizer's, ``None`` where it does not depend on the parameter.
        rho, pcgrad: as for :func:`combine_flat_gradients`.
        scale: a constant scale ``s`` instead of the norm ratio (loss and fixed mode with PCGrad).

    Returns:
        ``(combined gradients, stats)`` as :func:`combine_flat_gradients`, but floats: this path
        reads them back to the host (:func:`combine_penalty_gradients`).
    """
    combined, (stats,) = combine_penalty_gradients(base_grads, [(reg_grads, rho, scale)], pcgrad)
    return combined, stats


def combine_penalty_gradients(
    base_grads: list[Tensor],
    penalties: Sequence[tuple[list[Tensor | None], float, Tensor | None]],
    pcgrad: bool = False,
) -> tuple[list[Tensor], list[dict[str, float]]]:
    """``g_b + Σ_i u_i``: several penalties, each with its own scale, on per-parameter gradients.

    Each penalty ``i`` is ``(g_i, ρ_i, s_i)``: its gradients (``None`` where it does not depend on
    a parameter), its ratio, and a constant scale ``s_i``, or ``None`` for the grad-mode norm ratio
    ``s_i = ρ_i ‖g_b‖ / (‖g_i‖ + ε)``. ``u_i = s_i g_i``; with ``pcgrad``, a ``u_i`` that conflicts
    with ``g_b`` loses its component along ``g_b`` (each penalty is projected against the base
    gradient alone, as PCGrad treats every pair with the base task). Every norm and dot product is
    taken on the unmodified ``g_b``.

    Args:
        base_grads: gradients of the base loss, one per parameter; updated in place and returned.
        penalties: the ``(g_i, ρ_i, s_i)`` triples.
        pcgrad: project conflicting penalty gradients.

    Returns:
        ``(combined gradients, one stats dict per penalty)``: ``cos``, ``scale`` (= ``s_i``),
        ``base_grad_norm``, ``reg_grad_norm`` as floats. Host synchronisation: each of the four,
        ``s_i`` itself (the in-place add's ``alpha``), with ``pcgrad`` the sign of ``g_b·g_i``, and
        once the PCGrad factor on ``g_b``, are read back from the device one by one.
    """
    base_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(base_grads)))
    terms, all_stats = [], []
    shrink = None  # Σ over conflicting penalties of s_i (g_b·g_i) / ‖g_b‖²
    for reg_grads, rho, given in penalties:
        pairs = [(b, r) for b, r in zip(base_grads, reg_grads, strict=True) if r is not None]
        reg_b, reg_r = [b for b, _ in pairs], [r for _, r in pairs]
        reg_norm = (
            torch.linalg.vector_norm(torch.stack(torch._foreach_norm(reg_r))) if pairs else 0.0
        )
        dot = sum(torch.dot(b.reshape(-1), r.reshape(-1)) for b, r in pairs) if pairs else 0.0
        dot = torch.as_tensor(dot, dtype=base_norm.dtype)
        scale = rho * base_norm / (reg_norm + EPS) if given is None else given
        all_stats.append(
            {
                "cos": float(dot / (base_norm * reg_norm + EPS)),
                "scale": float(scale),
                "base_grad_norm": float(base_norm),
                "reg_grad_norm": float(reg_norm),
            }
        )
        if pcgrad and dot < 0:
            along = scale * dot / base_norm.square()
            shrink = along if shrink is None else shrink + along
        terms.append((reg_b, reg_r, float(scale)))
    combined = list(base_grads)
    if shrink is not None:
        # The release's order: each scaled penalty gradient s·g_s loses its component along g_b,
        # i.e. g_b gains the factor (1 − Σ s·(g_b·g_s)/‖g_b‖²); g_s itself is added unprojected.
        torch._foreach_mul_(combined, float(1.0 - shrink))
    for reg_b, reg_r, scale in terms:
        if reg_r:
            torch._foreach_add_(reg_b, reg_r, alpha=scale)
    return combined, all_stats


def backward_penalties(
    params: Sequence[Tensor],
    base_loss: Tensor,
    penalties: Sequence[tuple[Tensor, float, Tensor | None]],
    pcgrad: bool = False,
) -> list[dict[str, float]]:
    """Accumulate ``g_b + Σ_i u_i`` (:func:`combine_penalty_gradients`) into ``params[j].grad``.

    Args:
        params: parameters that require gradients.
        base_loss: scalar base objective.
        penalties: ``(L_i, ρ_i, s_i)``: each scalar penalty with its ratio and constant scale
            (``None``: grad mode's norm ratio).
        pcgrad: project conflicting penalty gradients off ``g_b``.

    Returns:
        One stats dict per penalty, as :func:`combine_penalty_gradients` (which synchronises).
    """
    reg_grads = [
        list(torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True))
        for loss, _, _ in penalties
    ]
    base_grads = _owned(params, torch.autograd.grad(base_loss, params, allow_unused=True))
    combined, stats = combine_penalty_gradients(
        base_grads,
        [(g, rho, s) for g, (_, rho, s) in zip(reg_grads, penalties, strict=True)],
        pcgrad,
    )
    for p, g in zip(params, combined, strict=True):
        p.grad = g if p.grad is None else p.grad + g
    return stats


def apply_regularized_gradients(
    params: Sequence[Tensor],
    base_loss: Tensor,
    reg_loss: Tensor,
    mode: str = "grad",
    coef: float = 1e-3,
    pcgrad: bool = False,
) -> dict[str, Tensor | float]:
    """Backpropagate ``base_loss`` and ``reg_loss`` into ``params[i].grad`` (accumulating).

    Args:
        params: the parameters the regularizer acts on (e.g. the actor's).
        base_loss: scalar base objective (e.g. the PPO policy loss).
        reg_loss: scalar regularizer (e.g. :func:`~sphere_rl.regularizers.sphere_loss`).
        mode: ``"fixed"`` (``coef`` is λ), ``"loss"`` or ``"grad"`` (``coef`` is ρ).
        coef: λ or ρ, depending on ``mode`` (see the module docstring).
        pcgrad: PCGrad projection of a conflicting penalty gradient, in any mode: the penalty's
            gradient is scaled by the mode's coefficient first (``λ`` in fixed and loss mode), then
            loses its component along the base gradient if the two conflict.

    Returns:
        Statistics for logging: the applied ``scale`` ``s`` and, when the gradients are combined
        separately (grad mode, PCGrad), gradient norms and their cosine, as floats read back from
        the device (:func:`combine_penalty_gradients`); otherwise ``scale`` alone as a 0-dim tensor
        (no host synchronisation).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    params = [p for p in params if p.requires_grad]
    if mode == "grad" or pcgrad:
        scale = None if mode == "grad" else penalty_scale(mode, coef, base_loss, reg_loss)
        (stats,) = backward_penalties(params, base_loss, [(reg_loss, coef, scale)], pcgrad)
        return stats
    scale = penalty_scale(mode, coef, base_loss, reg_loss)
    _accumulate(params, _flat_grad(base_loss + scale * reg_loss, params, retain_graph=False))
    return {"scale": scale}
