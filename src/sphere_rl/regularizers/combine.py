"""How a regularizer's gradient is combined with the base (policy) loss's gradient.

SPHERE sets its strength relative to the policy loss rather than as a raw constant:

* ``fixed``: ``∇(L_base + λ L_reg)``.
* ``loss``: ``λ = ρ |L_base| / (L_reg + ε)`` treated as a constant (no gradient through the ratio).
* ``grad``: ``g_b + ρ ‖g_b‖ / (‖g_s‖ + ε) · g_s`` with ``g_b = ∇L_base`` and ``g_s = ∇L_reg``, so the
  penalty's contribution always has norm ``ρ ‖g_b‖`` (the setting of the paper's HumanoidBench runs).

With ``pcgrad=True`` (``grad`` mode only), the release's order: the penalty gradient is first scaled
to norm ``ρ ‖g_b‖``, then, if it conflicts with the base gradient (negative dot product), its
component along ``g_b`` is removed (Yu et al. 2020). The applied norm is therefore ``≤ ρ ‖g_b‖``.

:func:`apply_regularized_gradients` works on any list of parameters, so SPHERE can be added to any
PyTorch training loop, not only ours: compute both losses, call it, then ``optimizer.step()``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

MODES = ("fixed", "loss", "grad")
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


def penalty_coefficient(mode: str, coef: float, base_loss: Tensor, reg_loss: Tensor) -> Tensor:
    """The constant ``λ`` that folds a penalty into the loss as ``L_base + λ L_reg``.

    Args:
        mode: ``"fixed"`` (``λ = coef``) or ``"loss"`` (``λ = coef · |L_base| / (L_reg + ε)``).
        coef: λ or ρ.
        base_loss, reg_loss: scalar losses; only their values are read (``λ`` carries no gradient).

    Returns:
        A 0-dim tensor (no host synchronisation).
    """
    if mode == "fixed":
        return torch.as_tensor(coef, dtype=reg_loss.dtype, device=reg_loss.device)
    if mode == "loss":
        return coef * base_loss.detach().abs() / (reg_loss.detach() + EPS)
    raise ValueError(f"penalty_coefficient needs mode 'fixed' or 'loss', got {mode!r}")


def combine_flat_gradients(
    base_grad: Tensor, reg_grad: Tensor, rho: float, pcgrad: bool = False
) -> tuple[Tensor, dict[str, Tensor]]:
    """Grad-norm-ratio combination of two flat gradients.

    Args:
        base_grad: ``(P,)`` gradient of the base loss.
        reg_grad: ``(P,)`` gradient of the regularizer.
        rho: target ratio of the applied penalty gradient's norm to ``‖base_grad‖``.
        pcgrad: after scaling, remove the component of the scaled penalty gradient along
            ``base_grad`` if the two conflict (the release's order: scale, then project).

    Returns:
        ``(combined (P,), stats)``: stats are 0-dim tensors (``cos``, ``coef`` = the scale ``s``,
        ``base_grad_norm``, ``reg_grad_norm``). The applied penalty gradient has norm
        ``rho · ‖base_grad‖`` (up to ``ε``), or less when PCGrad removed a conflicting component.
    """
    base_norm, reg_norm = base_grad.norm(), reg_grad.norm()
    dot = torch.dot(base_grad, reg_grad)
    scale = rho * base_norm / (reg_norm + EPS)
    applied = scale * reg_grad
    if pcgrad:
        # dot < 0 implies base_norm > 0; torch.where keeps the 0/0 of the other branch out and
        # avoids a host sync on the sign.
        along = torch.where(dot < 0, scale * dot / base_norm.square(), torch.zeros_like(dot))
        applied = applied - along * base_grad
    stats = {
        "cos": dot / (base_norm * reg_norm + EPS),
        "coef": scale,
        "base_grad_norm": base_norm,
        "reg_grad_norm": reg_norm,
    }
    return base_grad + applied, stats


def combine_parameter_gradients(
    base_grads: list[Tensor], reg_grads: list[Tensor | None], rho: float, pcgrad: bool = False
) -> tuple[list[Tensor], dict[str, float]]:
    """:func:`combine_flat_gradients` on per-parameter gradients, without flattening them.

    The same rule, step for step (the flat function is the definition; a test keeps the two
    equal): it needs only ``‖g_b‖``, ``‖g_s‖`` and ``g_b·g_s``, then one in-place ``axpy`` per
    parameter, instead of concatenating millions of entries twice.

    Args:
        base_grads: gradients of the base loss, one per parameter; updated in place and returned.
        reg_grads: the regularizer's, ``None`` where it does not depend on the parameter.
        rho, pcgrad: as for :func:`combine_flat_gradients`.

    Returns:
        ``(combined gradients, stats)`` as :func:`combine_flat_gradients`.
    """
    pairs = [(b, r) for b, r in zip(base_grads, reg_grads, strict=True) if r is not None]
    base_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(base_grads)))
    reg_b, reg_r = [b for b, _ in pairs], [r for _, r in pairs]
    reg_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(reg_r))) if pairs else 0.0
    dot = sum(torch.dot(b.reshape(-1), r.reshape(-1)) for b, r in pairs) if pairs else 0.0
    dot = torch.as_tensor(dot, dtype=base_norm.dtype)
    scale = rho * base_norm / (reg_norm + EPS)
    stats = {
        "cos": float(dot / (base_norm * reg_norm + EPS)),
        "coef": float(scale),
        "base_grad_norm": float(base_norm),
        "reg_grad_norm": float(reg_norm),
    }
    combined = list(base_grads)
    if pcgrad and dot < 0:
        # The release's order: the scaled penalty gradient s·g_s loses its component along g_b,
        # i.e. g_b gains the factor (1 − s·(g_b·g_s)/‖g_b‖²); g_s itself is added unprojected.
        torch._foreach_mul_(combined, float(1.0 - scale * dot / base_norm.square()))
    if pairs:
        torch._foreach_add_(reg_b, reg_r, alpha=float(scale))
    return combined, stats


def apply_regularized_gradients(
    params: Sequence[Tensor],
    base_loss: Tensor,
    reg_loss: Tensor,
    mode: str = "grad",
    coef: float = 1e-3,
    pcgrad: bool = False,
) -> dict[str, Tensor]:
    """Backpropagate ``base_loss`` and ``reg_loss`` into ``params[i].grad`` (accumulating).

    Args:
        params: the parameters the regularizer acts on (e.g. the actor's).
        base_loss: scalar base objective (e.g. the PPO policy loss).
        reg_loss: scalar regularizer (e.g. :func:`~sphere_rl.regularizers.sphere_loss`).
        mode: ``"fixed"`` (``coef`` is λ), ``"loss"`` or ``"grad"`` (``coef`` is ρ).
        coef: λ or ρ, depending on ``mode``.
        pcgrad: PCGrad projection of a conflicting penalty gradient (``grad`` mode only).

    Returns:
        Statistics for logging, as 0-dim tensors (no host synchronisation): the effective
        coefficient ``coef`` and, in ``grad`` mode, gradient norms and their cosine.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if pcgrad and mode != "grad":
        raise ValueError(f"pcgrad needs mode='grad', got mode={mode!r}")
    params = [p for p in params if p.requires_grad]
    if mode == "grad":
        reg_grads = torch.autograd.grad(reg_loss, params, retain_graph=True, allow_unused=True)
        base_grads = torch.autograd.grad(base_loss, params, allow_unused=True)
        base_grads = _owned(params, base_grads)
        combined, stats = combine_parameter_gradients(base_grads, list(reg_grads), coef, pcgrad)
        for p, g in zip(params, combined, strict=True):
            p.grad = g if p.grad is None else p.grad + g
        return stats
    lam = penalty_coefficient(mode, coef, base_loss, reg_loss)
    _accumulate(params, _flat_grad(base_loss + lam * reg_loss, params, retain_graph=False))
    return {"coef": lam}
