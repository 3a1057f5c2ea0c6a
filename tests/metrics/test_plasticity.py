"""Unit-level, routing and weight metrics on hand-built inputs; the proxy rank; the report."""

import math

import pytest
import torch
from torch import nn

from sphere_rl.metrics import (
    active_fraction,
    distance_from_init,
    dormant_ratio,
    effective_rank,
    entk_effective_rank,
    grad_norm,
    layer_features,
    plasticity_report,
    routing_stats,
    sphere_proxy_rank,
    weight_norm,
)
from sphere_rl.nn import DSMoEActor, MLPActor, TopKMoEActor


def test_dormant_ratio_known_answers():
    # Unit mean |h|: 0, 0.05, 1, 2.95 → layer mean 1 → scores equal the means.
    h = torch.tensor([0.0, 0.05, 1.0, 2.95]).repeat(6, 1)
    h[::2] *= -1  # |h| is what counts, not the sign
    assert dormant_ratio(h, 0.0) == 0.25
    assert dormant_ratio(h, 0.1) == 0.5
    assert dormant_ratio(h, 1.0) == 0.75
    assert dormant_ratio(torch.zeros(5, 3), 0.0) == 1.0  # an all-zero layer is entirely dormant


def test_dormant_ratio_normalises_each_expert_by_its_own_layer():
    # Expert 0's units are small but equal to their own layer mean: not dormant. Normalising by
    # all experts' units together would make both of them dormant at tau = 0.1.
    h = torch.tensor([[[0.5, 0.5], [10.0, 10.0]]]).repeat(3, 1, 1)  # (N=3, E=2, d=2)
    assert dormant_ratio(h, 0.1) == 0.0
    assert dormant_ratio(h.reshape(3, 4), 0.1) == 0.5
    h[:, 1, 0] = 0.0
    assert dormant_ratio(h, 0.0) == 0.25


def test_active_fraction():
    h = torch.tensor([[1.0, 0.0, 0.0, 2.0], [0.0, 0.0, 0.0, 3.0]])
    assert active_fraction(h) == 3 / 8
    assert active_fraction(h.reshape(2, 2, 2)) == 3 / 8


def entropy(p):
    return -sum(x * math.log(x) for x in p if x > 0)


def test_routing_stats_on_hand_built_probs():
    probs = torch.tensor([[0.75, 0.25, 0.0, 0.0], [0.5, 0.0, 0.5, 0.0]])
    stats = routing_stats(probs)
    torch.testing.assert_close(
        stats.load, torch.tensor([0.625, 0.125, 0.25, 0.0], dtype=torch.float64)
    )
    torch.testing.assert_close(
        stats.selection_frequency, torch.tensor([1.0, 0.5, 0.5, 0.0], dtype=torch.float64)
    )
    assert stats.entropy == pytest.approx((entropy([0.75, 0.25]) + math.log(2)) / 2)
    assert stats.load_entropy == pytest.approx(entropy([0.625, 0.125, 0.25]))
    assert stats.unused_fraction == 0.25


def test_routing_stats_top_k_selection_for_dense_weights():
    probs = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.3, 0.5]])
    assert routing_stats(probs).unused_fraction == 0.0
    stats = routing_stats(probs, top_k=1)
    torch.testing.assert_close(
        stats.selection_frequency, torch.tensor([0.5, 0.0, 0.5], dtype=torch.float64)
    )
    assert stats.unused_fraction == pytest.approx(1 / 3)
    uniform = routing_stats(torch.full((4, 5), 0.2))
    assert uniform.entropy == pytest.approx(math.log(5))
    assert uniform.load_entropy == pytest.approx(math.log(5))


@pytest.mark.parametrize("n", [5, 40])  # E·d = 24 above and below the batch size
def test_sphere_proxy_rank_matches_explicit_second_moment(n):
    torch.manual_seed(0)
    actor = TopKMoEActor(6, 2, n_experts=4, top_k=2, hidden=(8, 6)).double()
    obs = torch.randn(n, 6, dtype=torch.float64)
    out = actor(obs)
    g, h = out.probs, out.expert_features  # (N, E), (N, E, d)
    phi = torch.cat([g[:, e : e + 1] * h[:, e] for e in range(4)], dim=1)
    second_moment = phi.T @ phi / n  # A = ΦᵀΦ/T, (E·d, E·d)
    expected = effective_rank(second_moment)
    assert sphere_proxy_rank(actor, obs) == pytest.approx(expected, rel=1e-8)
    assert sphere_proxy_rank(out) == pytest.approx(expected, rel=1e-8)
    assert torch.equal(layer_features(out)[-1], phi)


def test_sphere_proxy_rank_dense_actor_uses_last_hidden_features():
    torch.manual_seed(1)
    actor = MLPActor(6, 2, hidden=(9, 7)).double()
    obs = torch.randn(20, 6, dtype=torch.float64)
    h = actor(obs).hidden[-1]
    assert sphere_proxy_rank(actor, obs) == pytest.approx(effective_rank(h.T @ h), rel=1e-8)
    with pytest.raises(ValueError):
        sphere_proxy_rank(actor)


def test_weight_norm_and_distance_from_init():
    layer = nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 0.0]]))
        layer.bias.copy_(torch.tensor([0.0, 4.0]))
    initial = {k: v.clone() for k, v in layer.state_dict().items()}
    assert weight_norm(layer) == pytest.approx(5.0)
    assert distance_from_init(layer, initial) == 0.0
    with torch.no_grad():
        layer.weight[0, 0] = 0.0  # moves by 3
        layer.bias[1] = 0.0  # moves by 4
    assert distance_from_init(layer, initial) == pytest.approx(5.0)
    assert distance_from_init(layer, initial, relative=True) == pytest.approx(1.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_distance_from_init_leaves_the_weights_alone_and_sums_in_float64(dtype):
    # Oracle: the float64 sums written out with Python's exact fsum over every element.
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(7, 5), nn.Tanh(), nn.Linear(5, 3)).to(dtype)
    initial = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))
    moved = {k: v.clone() for k, v in net.state_dict().items()}
    squares = [
        (float(a) - float(b)) ** 2
        for k in moved
        for a, b in zip(moved[k].double().flatten(), initial[k].double().flatten(), strict=True)
    ]
    expected = math.sqrt(math.fsum(squares))
    assert distance_from_init(net, initial) == pytest.approx(expected, rel=1e-12)
    for k, v in net.state_dict().items():  # an in-place float64 update must not reach a weight
        assert torch.equal(v, moved[k]) and v.dtype == dtype
    assert all(v.dtype == dtype for v in initial.values())


def test_grad_norm_from_loss_and_from_grad_fields():
    layer = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    x = torch.tensor([[3.0, 0.0, 4.0]])
    loss = layer(x).sum()  # gradient w.r.t. the weight is x
    assert grad_norm(layer, loss) == pytest.approx(5.0)
    assert layer.weight.grad is None
    assert grad_norm(layer) == 0.0
    loss.backward()
    assert grad_norm(layer) == pytest.approx(5.0)


@pytest.mark.parametrize("training", [True, False])
def test_plasticity_report_keys_values_and_no_side_effects(training):
    torch.manual_seed(2)
    actor = DSMoEActor(6, 2, n_experts=3, top_k=1, hidden=(8, 8), layer_norm=True)
    initial = {k: v.clone() for k, v in actor.state_dict().items()}
    with torch.no_grad():
        actor.gate_head.weight.add_(0.5)
    actor.train(training)
    obs = torch.randn(12, 6)
    state = {k: v.clone() for k, v in actor.state_dict().items()}
    rng = torch.get_rng_state()
    report = plasticity_report(actor, obs, initial_state=initial)
    assert actor.training is training
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(state[k], v) for k, v in actor.state_dict().items())
    assert all(p.grad is None for p in actor.parameters())
    assert all(isinstance(v, float) for v in report.values())

    expected_keys = {"entk/effective_rank", "entk/mean_diagonal", "proxy/effective_rank"}
    for layer in range(2):
        for name in ("feature_rank", "srank", "dormant_0", "dormant_0.1", "active_fraction"):
            expected_keys.add(f"{name}/layer_{layer}")
        for name in ("dormant_0", "dormant_0.1", "active_fraction"):
            expected_keys.add(f"{name}/gate_layer_{layer}")
    expected_keys |= {"weights/norm", "weights/distance_from_init"}
    expected_keys |= {"weights/relative_distance_from_init", "routing/entropy"}
    expected_keys |= {"routing/load_entropy", "routing/unused_fraction"}
    expected_keys |= {f"routing/load_e{e}" for e in range(3)}
    expected_keys |= {f"routing/select_freq_e{e}" for e in range(3)}
    assert set(report) == expected_keys

    assert report["entk/effective_rank"] == pytest.approx(entk_effective_rank(actor, obs), rel=1e-6)
    assert report["proxy/effective_rank"] == report["feature_rank/layer_1"]
    assert report["weights/distance_from_init"] == pytest.approx(
        float(0.5 * math.sqrt(actor.gate_head.weight.numel())), rel=1e-5
    )
    assert sum(report[f"routing/load_e{e}"] for e in range(3)) == pytest.approx(1.0)


def test_plasticity_report_dense_actor_without_entk():
    torch.manual_seed(3)
    actor = MLPActor(4, 2, hidden=(6,))
    obs = torch.randn(10, 4)
    actor(obs).mean.sum().backward()
    report = plasticity_report(actor, obs, include_entk=False)
    assert "entk/effective_rank" not in report and "routing/entropy" not in report
    assert report["grad/norm"] == pytest.approx(grad_norm(actor))
    assert report["srank/layer_0"] >= 1
    assert 0.0 <= report["dormant_0.1/layer_0"] <= 1.0
