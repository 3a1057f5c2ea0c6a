"""Parseval regularization (Chung, Cherif, Meger & Precup, NeurIPS 2024).

Each hidden weight matrix ``W`` (rows = units, ``(fan_out, fan_in)``) is pulled towards a scaled
orthogonal matrix, ``W Wᵀ = s I``, by the penalty ``‖W Wᵀ − s I‖_F²``. As in the authors' code:

* every hidden layer is regularised (the input layer included), output layers are not;
* ``s = gain²`` with ``gain = √2``, the gain of the orthogonal initialisation, so that the penalty is
  zero at initialisation wherever a matrix can be orthogonal (``fan_out ≤ fan_in``);
* the coefficient is tuned at width 64 and scaled by ``(64 / width)²`` for other widths (the
  penalty sums ``width²`` entries); here ``width`` is each layer's ``fan_out``;
* optionally, a learnable per-unit scale ("diagonal layer", initialised to 1) after each hidden
  linear map gives back the freedom of unit norms that the constraint removes.

Mixture-of-Experts actors: every expert's hidden matrices and the gating network's hidden matrices
are regularised, each separately (one batched ``(E, d, d)`` product per layer), and summed. The
penalty acts on the actor only, through PPO's actor loss; the paper also regularises the critic.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sphere_rl.config import ExperimentConfig
from sphere_rl.interventions.units import towers, weight_matrices
from sphere_rl.nn.layers import HIDDEN_GAIN, POLICY_HEAD_GAIN, ExpertTrunk
from sphere_rl.nn.policy import PolicyOutput

REFERENCE_WIDTH = 64  # the width at which Chung et al. tuned the coefficient


def parseval_penalty(weight: Tensor, scale: float) -> Tensor:
    """``‖W Wᵀ − s I‖_F²`` for a batch of matrices.

    Args:
        weight: ``(..., rows, cols)``; each row is one unit's incoming weights.
        scale: ``s``, the target squared row norm.

    Returns:
        ``(...)`` penalties. The gradient is ``4 (W Wᵀ − s I) W``.
    """
    rows, cols = weight.shape[-2:]
    if cols < rows:
        # A tall matrix (e.g. the input layer): expand the square with the smaller Gram,
        # ‖WWᵀ‖² = ‖WᵀW‖² and tr(WWᵀ) = ‖W‖², at cost rows·cols² instead of rows²·cols.
        small = weight.transpose(-1, -2) @ weight
        frobenius_sq = small.square().sum(dim=(-2, -1))
        return frobenius_sq - 2 * scale * weight.square().sum(dim=(-2, -1)) + scale**2 * rows
    gram = weight @ weight.transpose(-1, -2)
    eye = torch.eye(rows, dtype=weight.dtype, device=weight.device)
    return (gram - scale * eye).square().sum(dim=(-2, -1))


def actor_parseval_penalty(actor: nn.Module, scale: float = HIDDEN_GAIN**2) -> Tensor:
    """Width-scaled Parseval penalty summed over the actor's hidden layers (all experts and the
    gate for MoE actors)."""
    total = torch.zeros((), device=actor.log_std.device)
    for tower in towers(actor, "actor", POLICY_HEAD_GAIN):
        for matrix in weight_matrices(tower):
            if matrix.hidden:
                weight = matrix.weight.get()  # (E, fan_out, fan_in)
                width_factor = (REFERENCE_WIDTH / weight.shape[-2]) ** 2
                total = total + width_factor * parseval_penalty(weight, scale).sum()
    return total


class DiagonalScale(nn.Module):
    """Learnable per-unit scale ``x ↦ c ⊙ x`` with ``c`` initialised to 1.

    ``weight`` is ``(width,)`` for a dense trunk and ``(E, 1, width)`` for stacked experts (acting
    on ``(E, N, width)``), the layouts of the trunks' LayerNorms. The diagonal layers of the
    authors' code also have a bias; it would duplicate the preceding linear layer's bias, so it is
    left out (the function class is the same).
    """

    def __init__(self, width: int, n_experts: int | None = None) -> None:
        super().__init__()
        shape = (width,) if n_experts is None else (n_experts, 1, width)
        self.weight = nn.Parameter(torch.ones(shape))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.weight


def add_diagonal_layers(actor: nn.Module) -> int:
    """Put a :class:`DiagonalScale` between each hidden linear map and its activation.

    Only where the trunk has no normalisation: a LayerNorm's affine scale already plays this role.
    Must run before the optimiser is created. Returns the number of layers added.
    """
    added = 0
    for tower in towers(actor, "actor", POLICY_HEAD_GAIN):
        trunk = tower.trunk
        n_experts = trunk.linears[0].n_experts if isinstance(trunk, ExpertTrunk) else None
        for i, (linear, norm) in enumerate(zip(trunk.linears, trunk.norms, strict=True)):
            if isinstance(norm, nn.Identity):
                width = linear.weight.shape[-1 if n_experts else 0]
                trunk.norms[i] = DiagonalScale(width, n_experts).to(linear.weight)
                added += 1
    return added


@dataclass
class ParsevalRegularizer:
    """Parseval regularization as a PPO actor penalty (fixed coefficient λ).

    Args:
        coef: λ at width 64 (scaled per layer, see :func:`actor_parseval_penalty`).
        diagonal_layers: add :class:`DiagonalScale` layers to the actor when the agent is built.
    """

    coef: float = 1e-3
    diagonal_layers: bool = True
    mode: str = "fixed"
    pcgrad: bool = False
    name: str = "parseval"

    @classmethod
    def from_config(cls, cfg: ExperimentConfig) -> ParsevalRegularizer:
        return cls(coef=cfg.parseval_coef, diagonal_layers=cfg.parseval_diag)

    def prepare_actor(self, actor: nn.Module) -> None:
        if self.diagonal_layers:
            add_diagonal_layers(actor)

    def penalty(self, output: PolicyOutput, obs: Tensor, agent) -> Tensor:
        return actor_parseval_penalty(agent.actor)
