"""Sparse top-k dispatch against the dense path (the reference implementation)."""

import copy

import pytest
import torch

from sphere_rl.nn import TopKMoEActor
from sphere_rl.nn.dispatch import plan_dispatch
from sphere_rl.nn.moe import dense_dispatch
from sphere_rl.regularizers import sphere_loss
from sphere_rl.regularizers.sphere import VARIANTS, routing_weighted_features, sphere_penalty


def _pair(seed=0, dtype=torch.float64, collapse=False, **kwargs):
    """A sparse actor with non-trivial parameters and a dense copy of it."""
    torch.manual_seed(seed)
    args = {"n_experts": 5, "top_k": 2, "hidden": (12, 10), **kwargs}
    sparse = TopKMoEActor(6, 3, **args).to(dtype)
    with torch.no_grad():
        for p in sparse.parameters():
            p.add_(0.1 * torch.randn_like(p))
        if collapse:  # every state routes to experts 0 and 1; experts 2-4 get no rows
            sparse.gate_head.bias.copy_(torch.tensor([50.0, 40.0, 0.0, 0.0, 0.0]))
    dense = copy.deepcopy(sparse)
    dense.dispatch = "dense"
    return sparse, dense


def _penalty(out, actions, variant="last"):
    # The gradient-factor variant needs per-sample losses: the actions' negative log-likelihoods.
    sample_loss = -out.distribution().log_prob(actions).sum(-1)
    return sphere_loss(out, variant, sample_loss if variant == "gradient_factor" else None)


def _loss(out, actions, variant="last"):
    logp = out.distribution().log_prob(actions).sum()
    return logp + out.logits.square().mean() + 10.0 * _penalty(out, actions, variant)


def _grads(actor, out, actions, variant="last"):
    actor.zero_grad(set_to_none=True)
    _loss(out, actions, variant).backward()
    return {n: p.grad for n, p in actor.named_parameters()}


def test_plan_matches_brute_force_assignment():
    torch.manual_seed(0)
    top_index = torch.rand(23, 7).topk(3, dim=-1).indices
    plan = plan_dispatch(top_index, 7)
    rows = []  # oracle: experts in order, states in order within an expert
    for e in range(7):
        rows += [(n, a) for n in range(23) for a in range(3) if int(top_index[n, a]) == e]
    assert len(rows) == 23 * 3
    for r, (n, a) in enumerate(rows):
        assert int(plan.pair_row[n, a]) == r
        assert int(plan.row_pair[r]) == n * 3 + a
        assert int(plan.row_state[r]) == n
        assert int(plan.row_expert[r]) == int(top_index[n, a])
    counts = torch.bincount(top_index.reshape(-1), minlength=7).tolist()
    assert [stop - start for _, start, stop in plan.expert_rows()] == [c for c in counts if c]
    assert plan.offsets[-1] == 23 * 3


@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("activation", ["relu", "crelu", "tanh"])
@pytest.mark.parametrize("collapse", [False, True])
def test_sparse_outputs_and_gradients_equal_dense(layer_norm, activation, collapse):
    sparse, dense = _pair(layer_norm=layer_norm, activation=activation, collapse=collapse)
    obs = torch.randn(17, 6, dtype=torch.float64)
    actions = torch.randn(17, 3, dtype=torch.float64)
    out_s, out_d = sparse(obs), dense(obs)
    assert out_s.routed is not None and out_d.routed is None
    for name in ("mean", "logits", "probs"):
        torch.testing.assert_close(getattr(out_s, name), getattr(out_d, name), rtol=0, atol=1e-12)
    selected = (out_d.probs > 0).unsqueeze(-1)
    for h_s, h_d in zip(out_s.hidden, out_d.hidden, strict=True):
        assert h_s.shape == h_d.shape
        torch.testing.assert_close(h_s, h_d * selected, rtol=0, atol=1e-12)
    torch.testing.assert_close(sphere_loss(out_s), sphere_loss(out_d), rtol=1e-12, atol=1e-12)
    g_s, g_d = _grads(sparse, out_s, actions), _grads(dense, out_d, actions)
    for name in g_d:
        assert g_s[name] is not None, name
        torch.testing.assert_close(g_s[name], g_d[name], rtol=1e-10, atol=1e-12, msg=name)
    assert g_d["gate.linears.0.weight"].abs().sum() > 0  # the SPHERE/routing path reaches the gate


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_sphere_variant_and_its_gradient_equal_dense(variant):
    sparse, dense = _pair(seed=3, hidden=(9, 8, 7))
    obs = torch.randn(11, 6, dtype=torch.float64)
    actions = torch.randn(11, 3, dtype=torch.float64)
    out_s, out_d = sparse(obs), dense(obs)
    torch.testing.assert_close(_penalty(out_s, actions, variant), _penalty(out_d, actions, variant))
    g_s, g_d = _grads(sparse, out_s, actions, variant), _grads(dense, out_d, actions, variant)
    for name in g_d:
        torch.testing.assert_close(g_s[name], g_d[name], rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("n_states", [4, 40])  # D = E·d above and below T: both Gram choices
def test_routed_penalty_matches_concatenated_features_oracle(n_states):
    sparse, _ = _pair(seed=5, hidden=(6,))
    out = sparse(torch.randn(n_states, 6, dtype=torch.float64))
    probs = out.probs.detach()
    feats = out.hidden[-1].detach()  # dense layout, zeros for unselected experts
    phi = routing_weighted_features(probs, feats)  # (T, E·d)
    a = phi.T @ phi / n_states  # independent oracle: the D×D second moment, written out
    expected = (a - a.trace() / a.shape[0] * torch.eye(a.shape[0], dtype=a.dtype)).square().sum()
    torch.testing.assert_close(sphere_loss(out).detach(), expected, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(sphere_penalty(phi), expected, rtol=1e-10, atol=1e-14)


def test_paper_size_float32_agrees_with_dense_to_rounding():
    torch.manual_seed(0)
    sparse = TopKMoEActor(51, 19)  # E = 10, k = 2, 3×256
    dense = copy.deepcopy(sparse)
    dense.dispatch = "dense"
    obs, actions = torch.randn(64, 51), torch.randn(64, 19)
    out_s, out_d = sparse(obs), dense(obs)
    torch.testing.assert_close(out_s.mean, out_d.mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sphere_loss(out_s), sphere_loss(out_d), rtol=1e-4, atol=0)
    g_s, g_d = _grads(sparse, out_s, actions), _grads(dense, out_d, actions)
    for name in g_d:
        scale = g_d[name].abs().max()
        torch.testing.assert_close(g_s[name], g_d[name], rtol=0, atol=1e-4 * scale, msg=name)


def test_dense_dispatch_context_restores_mode_and_rejects_bad_mode():
    sparse, _ = _pair()
    holder = torch.nn.ModuleDict({"actor": sparse})
    with dense_dispatch(holder):
        assert sparse.dispatch == "dense"
        assert sparse(torch.randn(3, 6, dtype=torch.float64)).routed is None
    assert sparse.dispatch == "sparse"
    with pytest.raises(ValueError, match="dispatch must be one of"):
        TopKMoEActor(4, 2, dispatch="grouped")


def test_hidden_sequence_indexing():
    sparse, dense = _pair(hidden=(5, 6, 7))
    obs = torch.randn(8, 6, dtype=torch.float64)
    out_s, out_d = sparse(obs), dense(obs)
    assert len(out_s.hidden) == 3
    assert [h.shape for h in out_s.hidden[1:]] == [h.shape for h in out_d.hidden[1:]]
    assert out_s.hidden[-1] is out_s.hidden[2]  # built once
    assert out_s.expert_features.shape == (8, 5, 7)
    with pytest.raises(IndexError):
        out_s.hidden[3]


def test_torch_func_jacobian_through_a_sparse_actor_equals_autograd():
    sparse, dense = _pair(seed=8)
    obs = torch.randn(5, 6, dtype=torch.float64)
    params = dict(sparse.named_parameters())
    jac = torch.func.jacrev(lambda p: torch.func.functional_call(sparse, p, (obs,)).mean)(params)
    out = dense(obs).mean
    for name in ("experts.linears.0.weight", "gate.linears.1.weight"):
        row = torch.autograd.grad(
            out[2, 1], dict(dense.named_parameters())[name], retain_graph=True
        )[0]
        torch.testing.assert_close(jac[name][2, 1], row)
    assert sparse.dispatch == "sparse"


def test_minibatch_observer_sees_every_expert_after_sparse_dispatch():
    from types import SimpleNamespace

    from sphere_rl.interventions.observer import UnitActivityObserver

    sparse, dense = _pair(seed=9)
    obs = torch.randn(12, 6, dtype=torch.float64)
    seen = {}
    for name, actor in (("sparse", sparse), ("dense", dense)):
        observer = UnitActivityObserver()
        observer.observe_minibatch(actor(obs), obs, SimpleNamespace(actor=actor))
        seen[name] = observer.last_hidden
    for h_s, h_d in zip(seen["sparse"], seen["dense"], strict=True):
        assert h_s.shape == (5, 12, h_s.shape[-1])  # (E, N, d): unselected experts included
        torch.testing.assert_close(h_s, h_d)
        assert not h_s.requires_grad
