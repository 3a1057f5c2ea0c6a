"""The release's SPHERE combination rules of the second audit, against hand computations: the
gate penalty with its own scale, and PCGrad in loss and fixed mode."""

from __future__ import annotations

import copy

import pytest
import torch

from sphere_rl.config import build_config
from sphere_rl.methods import build_agent
from sphere_rl.regularizers import apply_regularized_gradients, gate_penalty, sphere_loss

EPS = 1e-8


def _toy(reg_center):
    """p = (1, 2); L_b = 3·p0 + 4·p1 (g_b = (3, 4), L_b = 11); L_s = ‖p − c‖²."""
    p = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    base = 3.0 * p[0] + 4.0 * p[1]
    reg = (p - torch.tensor(reg_center, dtype=torch.float64)).square().sum()
    return p, base, reg


@pytest.mark.parametrize(
    ("mode", "center", "expected"),
    [
        # L_s = 5, g_s = (−2, −4), g_b·g_s = −22 < 0. λ = 0.5·11/5 = 1.1, u = (−2.2, −4.4),
        # u·g_b = −24.2, u − (−24.2/25)·g_b = (0.704, −0.528).
        ("loss", [2.0, 4.0], [3.704, 3.472]),
        # λ = 0.5: u = (−1, −2), u·g_b = −11, u + 0.44·g_b = (0.32, −0.24).
        ("fixed", [2.0, 4.0], [3.32, 3.76]),
        # No conflict (c = (0, 0): L_s = 5, g_s = (2, 4)): u = λ·g_s unprojected, λ = 1.1.
        ("loss", [0.0, 0.0], [5.2, 8.4]),
    ],
)
def test_pcgrad_in_loss_and_fixed_mode_projects_the_scaled_penalty_gradient(mode, center, expected):
    p, base, reg = _toy(center)
    stats = apply_regularized_gradients([p], base, reg, mode, coef=0.5, pcgrad=True)
    torch.testing.assert_close(p.grad, torch.tensor(expected, dtype=torch.float64), rtol=1e-7,
                               atol=1e-9)  # fmt: skip
    assert stats["scale"] == pytest.approx(1.1 if mode == "loss" else 0.5, rel=1e-7)
    # Without PCGrad: g_b + λ g_s.
    p, base, reg = _toy(center)
    apply_regularized_gradients([p], base, reg, mode, coef=0.5)
    lam = 1.1 if mode == "loss" else 0.5
    g_s = [2 * (1.0 - center[0]), 2 * (2.0 - center[1])]
    plain = torch.tensor([3.0 + lam * g_s[0], 4.0 + lam * g_s[1]], dtype=torch.float64)
    torch.testing.assert_close(p.grad, plain, rtol=1e-7, atol=1e-9)


def _flat(loss, params):
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat(
        [
            (torch.zeros_like(q) if g is None else g).reshape(-1)
            for q, g in zip(params, grads, strict=True)
        ]
    )


def _project(g_b, u):
    """PCGrad by hand: drop u's component along g_b when they conflict."""
    dot = float(u @ g_b)
    return u - dot / float(g_b @ g_b) * g_b if dot < 0 else u


def _agent_gradient(overrides, adv_sign=1.0):
    """The actor gradient one PPO minibatch step applies (read from Adam's first moment, m = 0.1 g
    after one step) and the pieces to compute it by hand, in float64."""
    cfg = build_config(
        {"method": "sphere", "hidden": [8], "n_experts": 4, "top_k": 2, "rho": 0.1,
         "sphere_gating_ratio": 0.3, "max_grad_norm": 1e9, "adam_kernel": "foreach",
         **overrides}
    )  # fmt: skip
    torch.manual_seed(0)
    agent = build_agent(cfg, 5, 2)
    agent.actor.double()
    agent.critic.double()
    with torch.no_grad():
        for q in agent.actor.parameters():  # off the initial plateau: every term non-zero
            q.add_(0.3 * torch.randn_like(q))
    actor = copy.deepcopy(agent.actor)
    obs = torch.randn(24, 5, dtype=torch.float64)
    actions = torch.randn(24, 2, dtype=torch.float64)
    old_lp = torch.randn(24, dtype=torch.float64) - 2.0
    adv = adv_sign * torch.randn(24, dtype=torch.float64)
    agent._minibatch_step(obs, actions, old_lp, adv, torch.zeros(24, dtype=torch.float64))
    applied = torch.cat(
        [agent.actor_optimizer.state[q]["exp_avg"].reshape(-1) / 0.1
         for q in agent.actor.parameters()]
    )  # fmt: skip
    out = actor(obs)
    ratio = (out.distribution().log_prob(actions).sum(-1) - old_lp).exp()
    policy = torch.max(-adv * ratio, -adv * ratio.clamp(0.8, 1.2)).mean()
    params = list(actor.parameters())
    losses = {"b": policy, "s": sphere_loss(out), "gate": gate_penalty(out.probs)}
    grads = {k: _flat(v, params) for k, v in losses.items()}
    values = {k: float(v.detach()) for k, v in losses.items()}
    return applied, grads, values


@pytest.mark.parametrize(("pcgrad", "adv_sign"), [(False, 1.0), (True, 1.0), (True, -1.0)])
@pytest.mark.parametrize("mode", ["loss", "grad"])
def test_gate_penalty_has_its_own_scale(mode, pcgrad, adv_sign):
    applied, g, v = _agent_gradient({"sphere_mode": mode, "pcgrad": pcgrad}, adv_sign)
    # adv_sign −1 makes both penalties conflict with the policy gradient (PCGrad projects both).
    assert (float(g["b"] @ g["s"]) < 0) == (float(g["b"] @ g["gate"]) < 0) == (adv_sign < 0)
    if mode == "loss":  # λ = ρ|L_b|/L_s, λ_gate = r|L_b|/L_gate
        s, s_gate = 0.1 * abs(v["b"]) / (v["s"] + EPS), 0.3 * abs(v["b"]) / (v["gate"] + EPS)
    else:  # s = ρ‖g_b‖/‖g_s‖, s_gate = r‖g_b‖/‖g_gate‖
        s = 0.1 * float(g["b"].norm()) / (float(g["s"].norm()) + EPS)
        s_gate = 0.3 * float(g["b"].norm()) / (float(g["gate"].norm()) + EPS)
    u, u_gate = s * g["s"], s_gate * g["gate"]
    if pcgrad:
        u, u_gate = _project(g["b"], u), _project(g["b"], u_gate)
    torch.testing.assert_close(applied, g["b"] + u + u_gate, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("mode", ["loss", "grad"])
def test_shared_gate_scale_keeps_one_penalty(mode):
    applied, g, v = _agent_gradient({"sphere_mode": mode, "sphere_gate_scale": "shared"})
    g_sum, v_sum = g["s"] + 0.3 * g["gate"], v["s"] + 0.3 * v["gate"]
    if mode == "loss":
        s = 0.1 * abs(v["b"]) / (v_sum + EPS)
    else:
        s = 0.1 * float(g["b"].norm()) / (float(g_sum.norm()) + EPS)
    torch.testing.assert_close(applied, g["b"] + s * g_sum, rtol=1e-9, atol=1e-12)
