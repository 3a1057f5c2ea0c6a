"""Continual backprop: how many units, which ones, and that the function is kept."""

import pytest
import torch
from intervention_helpers import ARCHS, random_rollout, small_agent

from sphere_rl.interventions import ContinualBackprop, contribution_utility, lowest_utility_mask


def test_contribution_utility():
    h = torch.tensor([[[1.0, -2.0], [3.0, 0.0]]])  # (E=1, N=2, d=2)
    w_out = torch.tensor([[[1.0, -1.0], [2.0, 0.5], [-1.0, 0.5]]])  # (E=1, fan_out=3, d=2)
    expected = torch.tensor([[2.0 * 4.0, 1.0 * 2.0]])
    torch.testing.assert_close(contribution_utility(h, w_out), expected)


def test_lowest_utility_mask_picks_exactly_the_lowest_mature_units():
    utility = torch.tensor([[0.5, 0.1, 0.3, 0.2, 0.9], [0.4, 0.3, 0.2, 0.1, 0.0]])
    mature = torch.tensor([[True, False, True, True, True], [True, True, True, True, False]])
    mask = lowest_utility_mask(utility, mature, torch.tensor([2, 1]))
    # Row 0: unit 1 has the lowest utility but is immature; row 1: unit 4 likewise.
    expected = torch.tensor([[False, False, True, True, False], [False, False, False, True, False]])
    assert torch.equal(mask, expected)
    assert torch.equal(lowest_utility_mask(utility, mature, torch.tensor([0, 0])), ~mature & mature)


def _cbp(agent) -> ContinualBackprop:
    (cbp,) = [cb for cb in agent.callbacks if isinstance(cb, ContinualBackprop)]
    assert cbp in agent.observers and cbp not in agent.regularizers
    return cbp


def test_budget_maturity_and_selection_over_updates():
    agent = small_agent("topk_moe", "cbp", cbp_replacement_rate=0.25, cbp_maturity=2)
    cbp = _cbp(agent)
    layer = cbp.layers[0]  # experts' first layer: E=3 groups of 16 units
    obs = torch.randn(40, 7)
    counts = []
    for _ in range(5):
        with torch.no_grad():
            h = agent.actor.experts(obs)[0]
        mature = cbp.age[layer.name] + 1 > cbp.maturity
        expected_utility = cbp.decay * cbp.utility[layer.name] + (
            1 - cbp.decay
        ) * contribution_utility(h, layer.outgoing.get())
        mask = cbp.step_layer(layer, h)
        counts.append(mask.sum(-1).tolist())
        assert not (mask & ~mature).any()  # only mature units
        for e in range(3):  # the lowest utilities among the mature units of each expert
            chosen = expected_utility[e][mask[e]]
            kept = expected_utility[e][mature[e] & ~mask[e]]
            assert chosen.numel() == 0 or chosen.max() <= kept.min()
        assert (cbp.age[layer.name][mask] == 0).all()
        assert (cbp.utility[layer.name][mask] == 0).all()
    # Ages 1 and 2 are not above the threshold; then ρ × (mature units) per expert and update:
    # 0.25 × 16 = 4, then 0.25 × 12 = 3 (the 4 new units are young), then 0.25 × 9 = 2.25 → 2.
    assert counts == [[0, 0, 0], [0, 0, 0], [4, 4, 4], [3, 3, 3], [2, 2, 2]]
    torch.testing.assert_close(cbp.budget[layer.name], torch.full((3,), 0.25))


def test_fractional_budget_accumulates():
    agent = small_agent("mlp", "cbp", cbp_replacement_rate=0.05, cbp_maturity=0)
    cbp = _cbp(agent)
    layer = cbp.layers[0]  # 16 units: 0.8 units per update
    h = torch.rand(1, 10, 16)
    totals = [int(cbp.step_layer(layer, h).sum()) for _ in range(5)]
    assert totals == [0, 1, 1, 1, 1]  # 0.8, 1.6→0.6, 1.4→0.4, 1.2→0.2, 1.0→0.0


def test_replacement_keeps_the_policy_output():
    agent = small_agent("topk_moe", "cbp", cbp_replacement_rate=0.3, cbp_maturity=0)
    cbp = _cbp(agent)
    with torch.no_grad():
        for p in agent.actor.parameters():
            p.add_(0.1 * torch.randn_like(p))  # move away from the small initial policy head
        for layer in cbp.layers:  # units 0-5 of every group contribute nothing: lowest utility
            layer.outgoing.get()[..., :6] = 0.0
    obs = torch.randn(32, 7)
    cbp.observe_minibatch(agent.actor(obs), obs, agent)
    before, value_before = agent.actor(obs).mean.detach(), agent.critic(obs).detach()
    incoming_before = [layer.incoming.get().clone() for layer in cbp.layers]
    cbp.after_optimizer_step(agent)
    # ⌊0.3 × 16⌋ = 4 units in every group: 3 experts × 2 layers, the gate's 2, the critic's 2.
    assert cbp.replaced == 4 * (3 * 2 + 2 + 2)
    for layer, old in zip(cbp.layers, incoming_before, strict=True):
        changed = (layer.incoming.get() != old).all(-1)
        assert changed.sum(-1).eq(4).all() and not changed[..., 6:].any()
    torch.testing.assert_close(agent.actor(obs).mean, before)
    torch.testing.assert_close(agent.critic(obs), value_before)


@pytest.mark.parametrize("arch", ARCHS)
def test_cbp_trains_on_every_actor(arch):
    agent = small_agent(arch, "cbp", cbp_replacement_rate=0.1, cbp_maturity=1)
    agent.update(*random_rollout(agent))
    assert _cbp(agent).replaced > 0
    critic_layers = [u for u in _cbp(agent).layers if u.name.startswith("critic")]
    assert len(critic_layers) == 2
    without_critic = small_agent(arch, "cbp", intervene_on_critic=False)
    assert all(u.name.startswith("actor") for u in _cbp(without_critic).layers)
