"""SPHERE penalty against a float64 oracle, its variants, and the gradient combiner."""

import pytest
import torch

from sphere_rl.nn import MLPActor, TopKMoEActor
from sphere_rl.regularizers import (
    apply_regularized_gradients,
    combine_flat_gradients,
    combine_parameter_gradients,
    gate_penalty,
    routing_weighted_features,
    sphere_loss,
    sphere_penalty,
)
from sphere_rl.regularizers.hooks import SphereRegularizer


def oracle(phi: torch.Tensor) -> torch.Tensor:
    """‖A − (tr A / D) I‖_F² formed explicitly in float64."""
    phi = phi.double()
    t, d = phi.shape
    a = phi.T @ phi / t
    return (a - torch.trace(a) / d * torch.eye(d, dtype=torch.float64)).square().sum()


@pytest.mark.parametrize(("t", "d"), [(5, 40), (40, 5), (16, 16), (1, 3), (64, 7)])
@pytest.mark.parametrize("seed", [0, 1])
def test_penalty_matches_oracle_and_both_grams_agree(t, d, seed):
    gen = torch.Generator().manual_seed(seed)
    phi = torch.randn(t, d, generator=gen, dtype=torch.float64) * torch.rand(d, generator=gen)
    expected = oracle(phi)
    for gram in ("auto", "samples", "features"):
        torch.testing.assert_close(sphere_penalty(phi, gram=gram), expected, rtol=1e-10, atol=0)


def test_zero_for_isotropic_and_positive_otherwise():
    q, _ = torch.linalg.qr(torch.randn(32, 8, dtype=torch.float64))
    phi = 3.0 * q * (32**0.5)  # ΦᵀΦ/T = 9 I
    assert sphere_penalty(phi).abs() < 1e-10
    anisotropic = phi * torch.linspace(0.5, 2.0, 8, dtype=torch.float64)
    assert sphere_penalty(anisotropic) > 1e-3
    # More features than samples: A has rank ≤ T < D, so it can never be isotropic.
    assert sphere_penalty(torch.randn(4, 10, dtype=torch.float64)) > 1e-6


def test_invariant_to_sample_permutation_and_batched():
    phi = torch.randn(3, 20, 6, dtype=torch.float64)
    perm = torch.randperm(20)
    torch.testing.assert_close(sphere_penalty(phi[:, perm]), sphere_penalty(phi))
    torch.testing.assert_close(sphere_penalty(phi), torch.stack([oracle(p) for p in phi]))


@pytest.mark.parametrize(("t", "d"), [(4, 9), (9, 4)])
def test_gradcheck(t, d):
    phi = torch.randn(t, d, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(sphere_penalty, (phi,))


def test_routing_weighted_features_layout():
    probs = torch.tensor([[0.25, 0.0, 0.75]])
    feats = torch.arange(6.0).reshape(1, 3, 2)
    expected = torch.tensor([[0.0, 0.25, 0.0, 0.0, 3.0, 3.75]])
    torch.testing.assert_close(routing_weighted_features(probs, feats), expected)


def test_variants_against_explicit_constructions():
    torch.manual_seed(0)
    actor = TopKMoEActor(6, 2, n_experts=4, top_k=2, hidden=(10, 12)).double()
    out = actor(torch.randn(30, 6, dtype=torch.float64))
    probs, feats = out.probs, out.expert_features
    phi_last = torch.cat([probs[:, e : e + 1] * feats[:, e] for e in range(4)], dim=1)
    torch.testing.assert_close(sphere_loss(out, "last"), oracle(phi_last))
    per_expert = sum(oracle(probs[:, e : e + 1] * feats[:, e]) for e in range(4))
    torch.testing.assert_close(sphere_loss(out, "per_expert"), per_expert)
    all_layers = sum(
        oracle(torch.cat([probs[:, e : e + 1] * h[:, e] for e in range(4)], dim=1))
        for h in out.hidden
    )
    torch.testing.assert_close(sphere_loss(out, "all_layers"), all_layers)
    torch.testing.assert_close(sphere_loss(out, "gate"), oracle(probs) / 4)
    torch.testing.assert_close(gate_penalty(probs), oracle(probs) / 4)


def test_dense_actor_uses_plain_features_and_rejects_moe_only_variants():
    actor = MLPActor(5, 2, hidden=(8,)).double()
    out = actor(torch.randn(12, 5, dtype=torch.float64))
    torch.testing.assert_close(sphere_loss(out), oracle(out.hidden[-1]))
    with pytest.raises(ValueError, match="needs a Mixture-of-Experts actor"):
        sphere_loss(out, "gate")
    with pytest.raises(ValueError, match="variant must be one of"):
        sphere_loss(out, "everything")


def _losses(seed=0):
    torch.manual_seed(seed)
    actor = TopKMoEActor(6, 2, n_experts=4, top_k=2, hidden=(10,)).double()
    out = actor(torch.randn(16, 6, dtype=torch.float64))
    base = out.mean.square().mean() + out.log_std.sum()
    return actor, base, sphere_loss(out)


def _grads(actor):
    return torch.cat([p.grad.reshape(-1) for p in actor.parameters()])


def _flat(loss, actor):
    params = list(actor.parameters())
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat(
        [
            torch.zeros_like(p).reshape(-1) if g is None else g.reshape(-1)
            for p, g in zip(params, grads, strict=True)
        ]
    )


@pytest.mark.parametrize("rho", [1e-3, 0.5])
def test_grad_mode_scales_penalty_gradient_to_rho_times_base_norm(rho):
    actor, base, reg = _losses()
    g_b, g_s = _flat(base, actor), _flat(reg, actor)
    apply_regularized_gradients(list(actor.parameters()), base, reg, mode="grad", coef=rho)
    applied = _grads(actor) - g_b
    torch.testing.assert_close(applied.norm(), rho * g_b.norm(), rtol=1e-6, atol=0)
    # Direction is the penalty gradient's.
    cos = torch.dot(applied, g_s) / (applied.norm() * g_s.norm())
    torch.testing.assert_close(cos, torch.tensor(1.0, dtype=torch.float64))


def test_pcgrad_removes_conflicting_component():
    base = torch.tensor([1.0, 0.0], dtype=torch.float64)
    reg = torch.tensor([-1.0, 1.0], dtype=torch.float64)
    combined, stats = combine_flat_gradients(base, reg, rho=1.0, pcgrad=True)
    applied = combined - base
    assert stats["cos"] < 0
    assert torch.dot(applied, base).abs() < 1e-12
    # Without PCGrad the conflict remains.
    combined, _ = combine_flat_gradients(base, reg, rho=1.0, pcgrad=False)
    assert torch.dot(combined - base, base) < 0


def test_pcgrad_scales_first_then_projects_as_the_release():
    """Hand computation in float64: s = ρ‖g_b‖/‖g_s‖, u = s·g_s, then u − (u·g_b/‖g_b‖²) g_b."""
    base = torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64)  # ‖g_b‖ = 5
    reg = torch.tensor([-2.0, 0.0, 1.0], dtype=torch.float64)  # ‖g_s‖ = √5, g_b·g_s = −6
    rho = 0.1
    s = rho * 5.0 / (5.0**0.5 + 1e-8)
    u = [s * -2.0, 0.0, s * 1.0]
    along = (u[0] * 3.0 + u[1] * 4.0) / 25.0
    expected = torch.tensor(
        [3.0 + u[0] - along * 3.0, 4.0 + u[1] - along * 4.0, u[2]], dtype=torch.float64
    )
    combined, stats = combine_flat_gradients(base, reg, rho=rho, pcgrad=True)
    torch.testing.assert_close(combined, expected, rtol=1e-14, atol=1e-14)
    applied = combined - base
    assert applied.norm() < rho * base.norm()  # the projection only shortens the applied step
    assert float(stats["scale"]) == pytest.approx(s, rel=1e-14)
    # The old order (project, then rescale to ρ‖g_b‖) gives a different, longer step.
    projected = reg - torch.dot(reg, base) / 25.0 * base
    old = base + rho * 5.0 / projected.norm() * projected
    assert not torch.allclose(combined, old)
    # No conflict: PCGrad changes nothing.
    same, _ = combine_flat_gradients(base, -reg, rho=rho, pcgrad=True)
    torch.testing.assert_close(same, combine_flat_gradients(base, -reg, rho=rho)[0])


def test_loss_and_fixed_modes_match_manual_gradients():
    actor, base, reg = _losses()
    g_b, g_s = _flat(base, actor), _flat(reg, actor)
    lam = 1e-2 * base.detach().abs() / (reg.detach() + 1e-8)
    stats = apply_regularized_gradients(list(actor.parameters()), base, reg, "loss", coef=1e-2)
    torch.testing.assert_close(_grads(actor), g_b + lam * g_s)
    assert float(stats["scale"]) == pytest.approx(float(lam))

    actor, base, reg = _losses()
    g_b, g_s = _flat(base, actor), _flat(reg, actor)
    apply_regularized_gradients(list(actor.parameters()), base, reg, "fixed", coef=0.3)
    torch.testing.assert_close(_grads(actor), g_b + 0.3 * g_s)


def test_combiner_rejects_bad_arguments():
    actor, base, reg = _losses()
    with pytest.raises(ValueError, match="mode must be one of"):
        apply_regularized_gradients(list(actor.parameters()), base, reg, mode="ratio")


def _surrogate(actor, obs, actions, old_log_probs, adv):
    """Per-sample PPO clipped-surrogate losses ``ℓ_i`` (T,) and the forward pass."""
    out = actor(obs)
    log_ratio = out.distribution().log_prob(actions).sum(-1) - old_log_probs
    ratio = log_ratio.exp()
    return out, torch.max(-adv * ratio, -adv * ratio.clamp(0.8, 1.2))


@pytest.mark.parametrize("dense", [False, True])
def test_gradient_factor_matches_per_sample_autograd(dense):
    """Brute force: for each sample alone, ∂ℓ_i/∂b_e of each expert's output bias IS the cotangent
    at that expert's output μ_e(x_i) (μ_e = W_e h_e + b_e). Stack the rows, form G = ΨᵀΨ/T and the
    penalty explicitly in float64."""
    torch.manual_seed(3)
    t, obs_dim, act_dim = 12, 5, 3
    if dense:
        actor = MLPActor(obs_dim, act_dim, hidden=(8,)).double()
        bias = actor.head.bias
    else:
        actor = TopKMoEActor(obs_dim, act_dim, n_experts=4, top_k=2, hidden=(8, 6)).double()
        bias = actor.expert_head.bias  # (E, A)
    with torch.no_grad():
        for p in actor.parameters():  # heads start near zero; move off the clipping plateau
            p.add_(0.3 * torch.randn_like(p))
    obs = torch.randn(t, obs_dim, dtype=torch.float64)
    actions = torch.randn(t, act_dim, dtype=torch.float64)
    old_log_probs = torch.randn(t, dtype=torch.float64) - 3.0
    adv = torch.randn(t, dtype=torch.float64)

    rows = []
    for i in range(t):
        _, loss_i = _surrogate(actor, obs[i : i + 1], actions[i : i + 1], old_log_probs[i : i + 1],
                               adv[i : i + 1])  # fmt: skip
        (grad,) = torch.autograd.grad(loss_i.sum(), bias)
        rows.append(grad.reshape(-1))
    psi = torch.stack(rows)
    assert psi.abs().sum() > 0
    if not dense:  # unselected experts receive no cotangent
        out = actor(obs)
        unselected = (out.probs == 0).repeat_interleave(act_dim, dim=1)
        assert (psi[unselected] == 0).all()

    out, sample_loss = _surrogate(actor, obs, actions, old_log_probs, adv)
    value = sphere_loss(out, "gradient_factor", sample_loss)
    torch.testing.assert_close(value, oracle(psi), rtol=1e-10, atol=1e-12)
    # It is differentiable (double backward) and reaches the gate.
    value.backward()
    if not dense:
        assert actor.gate_head.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="needs the per-sample losses"):
        sphere_loss(out, "gradient_factor")


def test_gate_penalty_is_added_on_top_with_its_own_ratio():
    torch.manual_seed(1)
    actor = TopKMoEActor(6, 2, n_experts=4, top_k=2, hidden=(10,)).double()
    out = actor(torch.randn(20, 6, dtype=torch.float64))
    phi = torch.cat([out.probs[:, e : e + 1] * out.expert_features[:, e] for e in range(4)], 1)
    reg = SphereRegularizer(variant="last", gating_ratio=0.7)
    expected = oracle(phi) + 0.7 * oracle(out.probs) / 4
    torch.testing.assert_close(reg.penalty(out, None, None), expected)
    torch.testing.assert_close(SphereRegularizer().penalty(out, None, None), oracle(phi))
    dense = MLPActor(6, 2, hidden=(10,)).double()(torch.randn(4, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match="needs a Mixture-of-Experts actor"):
        reg.penalty(dense, None, None)


@pytest.mark.parametrize("pcgrad", [False, True])
@pytest.mark.parametrize("conflict", [False, True])
def test_per_parameter_combination_equals_flat_definition(pcgrad, conflict):
    torch.manual_seed(4)
    shapes = [(3, 4), (5,), (2, 2, 2), (6,)]  # the last parameter is unused by the regularizer
    flat_base = torch.randn(31, dtype=torch.float64)
    flat_reg = torch.randn(31, dtype=torch.float64)
    flat_reg[25:] = 0
    flat_reg = flat_reg - (3.0 if conflict else -3.0) * flat_base * (flat_reg != 0)
    sizes = [12, 5, 8, 6]
    base = [t.view(s).clone() for t, s in zip(flat_base.split(sizes), shapes, strict=True)]
    reg = [t.view(s).clone() for t, s in zip(flat_reg.split(sizes), shapes, strict=True)]
    reg[3] = None
    expected, expected_stats = combine_flat_gradients(flat_base, flat_reg, 0.37, pcgrad)
    combined, stats = combine_parameter_gradients(base, reg, 0.37, pcgrad)
    torch.testing.assert_close(torch.cat([c.reshape(-1) for c in combined]), expected)
    assert (stats["cos"] < 0) == conflict
    for key, value in expected_stats.items():
        assert stats[key] == pytest.approx(float(value), rel=1e-10, abs=1e-14), key


def test_grad_mode_equals_two_backward_reference_on_sparse_actor():
    torch.manual_seed(6)
    actor = TopKMoEActor(6, 2, n_experts=5, top_k=2, hidden=(10, 9)).double()
    obs = torch.randn(20, 6, dtype=torch.float64)
    for pcgrad in (False, True):
        out = actor(obs)
        base = out.distribution().log_prob(torch.randn(20, 2, dtype=torch.float64)).mean()
        reg = sphere_loss(out)
        g_b, g_s = _flat(base, actor), _flat(reg, actor)
        expected, _ = combine_flat_gradients(g_b, g_s, 1e-3, pcgrad)
        actor.zero_grad(set_to_none=True)
        apply_regularized_gradients(list(actor.parameters()), base, reg, "grad", 1e-3, pcgrad)
        torch.testing.assert_close(_grads(actor), expected, rtol=1e-12, atol=1e-15)
