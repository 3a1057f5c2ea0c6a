"""Networks: batched experts against per-expert nn.Linear references, routing invariants, errors."""

import pytest
import torch
from torch import nn

from sphere_rl.nn import (
    DenseMoEActor,
    DSMoEActor,
    MLPActor,
    MLPCritic,
    TopKMoEActor,
    count_parameters,
    param_matched_width,
    topk_routing,
)

MOE_CLASSES = [TopKMoEActor, DenseMoEActor, DSMoEActor]


def reference_expert_means(actor, obs):
    """Each expert rebuilt as its own stack of nn.Linear (+ nn.LayerNorm) with copied weights."""
    means = []
    for e in range(actor.n_experts):
        x = obs
        for linear, norm in zip(actor.experts.linears, actor.experts.norms, strict=True):
            ref = nn.Linear(linear.in_features, linear.out_features).double()
            ref.weight.data = linear.weight[e].T.detach().clone()
            ref.bias.data = linear.bias[e].detach().clone()
            x = ref(x)
            if isinstance(norm, nn.Identity):
                pass
            else:
                ref_norm = nn.LayerNorm(x.shape[-1], eps=1e-6).double()
                ref_norm.weight.data = norm.weight[e, 0].detach().clone()
                ref_norm.bias.data = norm.bias[e, 0].detach().clone()
                x = ref_norm(x)
            x = torch.relu(x)
        head = nn.Linear(actor.expert_head.in_features, actor.act_dim).double()
        head.weight.data = actor.expert_head.weight[e].T.detach().clone()
        head.bias.data = actor.expert_head.bias[e].detach().clone()
        means.append(head(x))
    return torch.stack(means, dim=1)  # (N, E, A)


@pytest.mark.parametrize("cls", MOE_CLASSES)
@pytest.mark.parametrize("layer_norm", [False, True])
def test_batched_experts_match_separate_linear_stacks(cls, layer_norm):
    torch.manual_seed(0)
    actor = cls(7, 3, n_experts=4, top_k=2, hidden=(16, 12), layer_norm=layer_norm).double()
    with torch.no_grad():  # non-trivial biases and norm affines so copying them is tested
        for p in actor.parameters():
            p.add_(0.1 * torch.randn_like(p))
    obs = torch.randn(9, 7, dtype=torch.float64)
    out = actor(obs)
    expert_means = reference_expert_means(actor, obs)
    expected = torch.einsum("ne,nea->na", out.probs, expert_means)
    torch.testing.assert_close(out.mean, expected, rtol=1e-12, atol=1e-12)
    assert out.expert_features.shape == (9, 4, 12)


def test_topk_routing_invariants_and_gradient_support():
    torch.manual_seed(1)
    logits = torch.randn(32, 6, requires_grad=True)
    probs = topk_routing(logits, top_k=2, temperature=0.7)
    assert torch.equal((probs > 0).sum(-1), torch.full((32,), 2))
    torch.testing.assert_close(probs.sum(-1), torch.ones(32))
    # Selected experts are the two largest logits.
    selected = probs > 0
    top2 = torch.zeros_like(selected).scatter(-1, logits.topk(2, -1).indices, True)
    assert torch.equal(selected, top2)
    # Gradient reaches only selected logits.
    (probs * torch.randn(32, 6)).sum().backward()
    assert torch.all(logits.grad[~selected] == 0)
    assert torch.all(logits.grad[selected].abs().sum() > 0)


def test_topk_actor_probs_and_temperature():
    torch.manual_seed(2)
    actor = TopKMoEActor(5, 2, n_experts=10, top_k=3, hidden=(8,), temperature=2.0)
    out = actor(torch.randn(20, 5))
    assert out.probs.shape == (20, 10) and out.logits.shape == (20, 10)
    assert torch.equal((out.probs > 0).sum(-1), torch.full((20,), 3))
    top_logits = out.logits.topk(3, -1).values
    torch.testing.assert_close(out.probs.topk(3, -1).values, torch.softmax(top_logits / 2.0, -1))


def test_dense_and_ds_moe_routing_modes():
    torch.manual_seed(3)
    dense = DenseMoEActor(5, 2, n_experts=4, top_k=2, hidden=(8,))
    assert torch.all(dense(torch.randn(6, 5)).probs > 0)
    ds = DSMoEActor(5, 2, n_experts=4, top_k=2, hidden=(8,))
    obs = torch.randn(6, 5)
    ds.train()
    assert torch.all(ds(obs).probs > 0)
    ds.eval()
    assert torch.equal((ds(obs).probs > 0).sum(-1), torch.full((6,), 2))
    assert torch.all(ds(obs, sparse=False).probs > 0)


def test_dense_actor_and_critic_shapes_and_options():
    actor = MLPActor(4, 2, hidden=(8, 8), activation="crelu", layer_norm=True)
    out = actor(torch.randn(3, 4))
    assert out.mean.shape == (3, 2)
    assert out.hidden[-1].shape == (3, 16)  # CReLU doubles the width
    assert out.probs is None
    critic = MLPCritic(4, hidden=(8,), width_multiplier=2.0)
    assert critic(torch.randn(3, 4)).shape == (3,)
    assert critic.hidden_sizes == (16,)
    dist = out.distribution()
    assert dist.sample().shape == (3, 2)


def test_param_matched_width_is_smallest_width_reaching_moe_size():
    moe = TopKMoEActor(39, 4, n_experts=10, top_k=2)
    target = count_parameters(moe)
    width = param_matched_width(target, 39, 4)
    assert count_parameters(MLPActor(39, 4, (width,) * 3)) >= target
    assert count_parameters(MLPActor(39, 4, (width - 1,) * 3)) < target


def test_initial_policy_mean_is_small():
    actor = TopKMoEActor(11, 3)
    assert actor(torch.randn(64, 11)).mean.abs().max() < 0.5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"top_k": 11}, "top_k must be an integer in \\[1, n_experts=10\\]"),
        ({"top_k": 0}, "top_k"),
        ({"n_experts": 0}, "n_experts must be an integer >= 1"),
        ({"hidden": ()}, "hidden must list at least one"),
        ({"hidden": (8, 0)}, "hidden\\[1\\] must be an integer >= 1"),
        ({"temperature": 0.0}, "temperature must be a number > 0"),
        ({"temperature": -1}, "temperature"),
        ({"obs_dim": 0}, "obs_dim must be an integer >= 1"),
        ({"act_dim": -2}, "act_dim must be an integer >= 1"),
        ({"activation": "gelu"}, "activation must be one of"),
    ],
)
@pytest.mark.parametrize("cls", MOE_CLASSES)
def test_invalid_moe_configurations(cls, kwargs, match):
    args = {"obs_dim": 4, "act_dim": 2, "hidden": (8,), **kwargs}
    with pytest.raises(ValueError, match=match):
        cls(**args)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hidden": ()}, "hidden"),
        ({"obs_dim": 0}, "obs_dim"),
        ({"act_dim": 0}, "act_dim"),
        ({"width_multiplier": 0}, "width_multiplier must be a number > 0"),
    ],
)
def test_invalid_dense_configurations(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLPActor(**{"obs_dim": 4, "act_dim": 2, **kwargs})
