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
        base_grad = _flat_grad(base_loss, params, retain_graph=True)
        reg_grad = _flat_grad(reg_loss, params, retain_graph=False)
        combined, stats = combine_flat_gradients(base_grad, reg_grad, coef, pcgrad)
        _accumulate(params, combined)
        return stats
    lam = penalty_coefficient(mode, coef, base_loss, reg_loss)
    _accumulate(params, _flat_grad(base_loss + lam * reg_loss, params, retain_graph=False))
    return {"coef": lam}
