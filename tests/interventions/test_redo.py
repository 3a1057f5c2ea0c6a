"""ReDo: exactly the dormant units at τ are recycled, every F updates."""

import pytest
import torch
from intervention_helpers import ARCHS, random_rollout, small_agent

from sphere_rl.interventions import ReDo, dormant_mask
from sphere_rl.metrics import dormant_ratio


def test_dormant_mask_threshold_is_inclusive_and_per_group():
    # Group 0: mean |h| = [0, 1, 2, 5], layer mean 2 → scores [0, 0.5, 1, 2.5].
    # Group 1: all silent → entirely dormant.
    h = torch.tensor([[[0.0, 1.0, 2.0, 5.0]], [[0.0, 0.0, 0.0, 0.0]]])  # (E=2, N=1, d=4)
    assert dormant_mask(h, 0.0).tolist() == [[True, False, False, False], [True] * 4]
    assert dormant_mask(h, 0.5).tolist() == [[True, True, False, False], [True] * 4]
    assert dormant_mask(h, 0.49).tolist() == [[True, False, False, False], [True] * 4]
    assert dormant_mask(-h, 1.0).tolist() == [[True, True, True, False], [True] * 4]


@pytest.mark.parametrize("tau", [0.0, 0.1, 0.5])
def test_agrees_with_the_dormant_ratio_metric(tau):
    h = torch.relu(torch.randn(3, 50, 16) + torch.linspace(-3, 1, 16))
    metric = dormant_ratio(h.transpose(0, 1), tau)  # the metric takes (N, E, d)
    assert dormant_mask(h, tau).float().mean().item() == pytest.approx(metric)


def _redo(agent) -> ReDo:
    (redo,) = [cb for cb in agent.callbacks if isinstance(cb, ReDo)]
    assert redo in agent.observers and redo not in agent.regularizers
    return redo


def test_recycles_exactly_the_dormant_units_every_period():
    agent = small_agent("topk_moe", "redo", redo_tau=0.3, redo_period=3)
    redo = _redo(agent)
    with torch.no_grad():  # silence some expert units: negative bias, zero incoming weights
        first = redo.layers[0]
        first.incoming.get()[:, :5] = 0.0
        first.bias.get()[:, :5] = -1.0
    obs = torch.randn(64, 7)
    before = [layer.incoming.get().clone() for layer in redo.layers]
    for _ in range(2):  # PPO's order: observe the minibatch, then the optimiser step
        redo.observe_minibatch(agent.actor(obs), obs, agent)
        assert redo.last_obs is None  # only the minibatch of a recycling update is kept
        redo.after_optimizer_step(agent)
    assert all(torch.equal(b, u.incoming.get()) for b, u in zip(before, redo.layers, strict=True))
    redo.observe_minibatch(agent.actor(obs), obs, agent)
    with torch.no_grad():
        expected = [dormant_mask(h, 0.3) for h in redo.minibatch_activations(redo.layers, agent)]
    assert expected[0][:, :5].all()
    redo.after_optimizer_step(agent)  # the third update recycles
    assert redo.last_obs is None  # and lets the minibatch go
    for layer, old, mask in zip(redo.layers, before, expected, strict=True):
        # Fresh rows; other rows only lose the columns of recycled units of the layer below.
        new = layer.incoming.get()
        changed = ((new != old) & (new != 0)).any(-1)
        assert torch.equal(changed, mask), layer.name
    assert redo.recycled == sum(int(m.sum()) for m in expected)
    assert redo.state_dict() == {"updates": 3, "recycled": redo.recycled}


@pytest.mark.parametrize("arch", ARCHS)
def test_redo_trains_on_every_actor(arch):
    agent = small_agent(arch, "redo", redo_tau=0.5, redo_period=2)
    agent.update(*random_rollout(agent))
    assert _redo(agent).updates == 8 and _redo(agent).recycled > 0
