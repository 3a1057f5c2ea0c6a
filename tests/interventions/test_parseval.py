"""Parseval regularization: the penalty, its gradient, which layers it covers, diagonal layers."""

import pytest
import torch
from intervention_helpers import small_agent

from sphere_rl.interventions import (
    DiagonalScale,
    actor_parseval_penalty,
    add_diagonal_layers,
    parseval_penalty,
)
from sphere_rl.nn import MLPActor, TopKMoEActor


def oracle(w: torch.Tensor, s: float) -> torch.Tensor:
    """‖WWᵀ − sI‖_F² formed explicitly in float64."""
    w = w.double()
    return (w @ w.T - s * torch.eye(w.shape[0], dtype=torch.float64)).square().sum()


def scaled_orthogonal(rows: int, cols: int, gain: float) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(max(rows, cols), min(rows, cols), dtype=torch.float64))
    return gain * (q if rows >= cols else q.T)


@pytest.mark.parametrize(("rows", "cols"), [(8, 8), (5, 12)])
def test_zero_for_scaled_orthogonal_rows_positive_otherwise(rows, cols):
    w = scaled_orthogonal(rows, cols, gain=2**0.5)
    assert parseval_penalty(w, 2.0).abs() < 1e-12
    assert parseval_penalty(w, 1.0) > 1.0  # right directions, wrong scale
    skewed = w * torch.linspace(0.8, 1.2, rows, dtype=torch.float64).unsqueeze(-1)
    assert parseval_penalty(skewed, 2.0) > 1e-3
    mixed = w + 0.1 * torch.randn_like(w)
    assert parseval_penalty(mixed, 2.0) > 1e-4


def test_tall_matrix_cannot_reach_zero():
    # More units than inputs: WWᵀ has rank ≤ cols, so (rows − cols) eigenvalues stay at 0 ≠ s.
    w = scaled_orthogonal(12, 5, gain=2**0.5)
    torch.testing.assert_close(parseval_penalty(w, 2.0), torch.tensor(7 * 4.0, dtype=w.dtype))


@pytest.mark.parametrize(("rows", "cols"), [(6, 6), (4, 9), (9, 4)])
def test_matches_oracle_batched(rows, cols):
    w = torch.randn(3, rows, cols, dtype=torch.float64)
    expected = torch.stack([oracle(m, 2.0) for m in w])
    torch.testing.assert_close(parseval_penalty(w, 2.0), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("rows", "cols"), [(6, 6), (4, 9), (9, 4)])
def test_gradient_is_closed_form(rows, cols):
    w = torch.randn(rows, cols, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(parseval_penalty(w, 2.0), w)
    w = w.detach()
    closed_form = 4 * (w @ w.T - 2.0 * torch.eye(rows, dtype=torch.float64)) @ w
    torch.testing.assert_close(grad, closed_form, rtol=1e-10, atol=1e-10)
    assert torch.autograd.gradcheck(lambda m: parseval_penalty(m, 2.0), (w.requires_grad_(),))


def _hidden_weights_dense(actor: MLPActor) -> list[torch.Tensor]:
    return [linear.weight for linear in actor.trunk.linears]


def test_actor_penalty_covers_hidden_layers_only_with_width_scaling():
    actor = MLPActor(5, 2, hidden=(32, 16)).double()
    expected = sum((64 / w.shape[0]) ** 2 * oracle(w, 2.0) for w in _hidden_weights_dense(actor))
    penalty = actor_parseval_penalty(actor)
    torch.testing.assert_close(penalty, expected)
    penalty.backward()
    assert actor.head.weight.grad is None  # the output layer is not regularised
    assert all(w.grad is not None for w in _hidden_weights_dense(actor))


def test_moe_penalty_is_the_sum_over_experts_and_gate():
    actor = TopKMoEActor(5, 2, n_experts=3, top_k=2, hidden=(16, 8)).double()
    expected = torch.zeros((), dtype=torch.float64)
    for linear in actor.experts.linears:  # stored (E, fan_in, fan_out): units are columns
        for weight in linear.weight:
            expected = expected + (64 / weight.shape[1]) ** 2 * oracle(weight.T, 2.0)
    for linear in actor.gate.linears:
        expected = expected + (64 / linear.weight.shape[0]) ** 2 * oracle(linear.weight, 2.0)
    penalty = actor_parseval_penalty(actor)
    torch.testing.assert_close(penalty, expected)
    penalty.backward()
    assert actor.expert_head.weight.grad is None and actor.gate_head.weight.grad is None


def test_penalty_is_zero_at_init_where_rows_can_be_orthogonal():
    # Square hidden layers start orthogonal with gain √2, the target scale s = 2.
    actor = MLPActor(16, 2, hidden=(16, 16))
    assert actor_parseval_penalty(actor) < 1e-8


@pytest.mark.parametrize("cls", [MLPActor, TopKMoEActor])
def test_diagonal_layers_keep_the_function_and_are_trained(cls):
    actor = cls(5, 2, hidden=(8, 8))
    obs = torch.randn(10, 5)
    before = actor(obs).mean
    assert add_diagonal_layers(actor) == (2 if cls is MLPActor else 4)
    torch.testing.assert_close(actor(obs).mean, before)
    scales = [m for m in actor.modules() if isinstance(m, DiagonalScale)]
    with torch.no_grad():
        scales[0].weight.mul_(2.0)
    assert not torch.allclose(actor(obs).mean, before)


def test_diagonal_layers_are_not_added_over_layer_norm():
    actor = MLPActor(5, 2, hidden=(8, 8), layer_norm=True)
    assert add_diagonal_layers(actor) == 0


def test_pw_agent_optimises_the_diagonal_scales():
    agent = small_agent("topk_moe", "parseval")
    scales = [m.weight for m in agent.actor.modules() if isinstance(m, DiagonalScale)]
    assert len(scales) == 4 and scales[0].shape == (3, 1, 16)
    optimised = {id(p) for group in agent.actor_optimizer.param_groups for p in group["params"]}
    assert all(id(s) in optimised for s in scales)
    plain = small_agent("topk_moe", "parseval", parseval_diag=False)
    assert not any(isinstance(m, DiagonalScale) for m in plain.actor.modules())
