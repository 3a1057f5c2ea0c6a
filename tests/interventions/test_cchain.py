"""C-CHAIN: churn on the previous minibatch, relative to the parameters one update ago."""

import pytest
import torch
from intervention_helpers import random_rollout, small_agent

from sphere_rl.interventions import CChain, churn


def _cchain(agent) -> CChain:
    (cchain,) = [r for r in agent.regularizers if isinstance(r, CChain)]
    assert cchain in agent.callbacks and cchain.mode == "loss"
    return cchain


def test_churn_is_the_mean_squared_change():
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert churn(a, a) == 0
    assert churn(a, a + torch.tensor([[1.0, 0.0], [0.0, 3.0]])) == pytest.approx(10 / 4)


@pytest.mark.parametrize("arch", ["mlp", "topk_moe", "ds_moe"])
def test_zero_when_the_policy_does_not_change_on_the_reference_batch(arch):
    agent = small_agent(arch, "cchain")
    cchain = _cchain(agent)
    first, second = torch.randn(16, 7), torch.randn(16, 7)
    assert cchain.penalty(agent.actor(first), first, agent) == 0  # no reference yet
    penalty = cchain.penalty(agent.actor(second), second, agent)  # no update in between
    assert penalty == 0
    # A change that leaves the means on the reference batch alone (log-std) is not churn either.
    with torch.no_grad():
        agent.actor.log_std.add_(0.5)
    assert cchain.penalty(agent.actor(first), first, agent) == 0


def test_measures_the_change_since_the_previous_minibatch_with_its_gradient():
    agent = small_agent("topk_moe", "cchain")
    cchain = _cchain(agent)
    reference_obs, obs = torch.randn(16, 7), torch.randn(16, 7)
    cchain.penalty(agent.actor(reference_obs), reference_obs, agent)
    with torch.no_grad():
        reference_mean = agent.actor(reference_obs).mean.clone()
        for p in agent.actor.parameters():
            p.add_(0.01 * torch.randn_like(p))  # "one update"
    penalty = cchain.penalty(agent.actor(obs), obs, agent)
    current = churn(agent.actor(reference_obs).mean, reference_mean)
    torch.testing.assert_close(penalty, current)  # first value: no history to average yet
    params = list(agent.actor.parameters())
    grads = torch.autograd.grad(penalty, params, allow_unused=True)
    expected = torch.autograd.grad(current, params, allow_unused=True)
    for g, e in zip(grads, expected, strict=True):
        assert (g is None and e is None) or torch.allclose(g, e)


def test_value_is_the_running_mean_over_iterations_and_resets_per_task():
    cchain = CChain(target=0.05, window=2, updates_per_iteration=2)
    values = [cchain._record(v) for v in (None, 3.0, 5.0, 7.0, 9.0, 11.0, 1.0)]
    # Iteration means 3 (the first update had no reference), 6, 10; until one completes, the
    # current iteration's mean; then the mean of the last two iteration means.
    assert values == [None, 3.0, 3.0, 4.5, 4.5, 8.0, 8.0]
    cchain.on_task_start(None, 1)
    assert cchain.reference is None and not cchain.history


def test_adaptive_scale_through_ppo_loss_mode_and_resume():
    agent = small_agent("topk_moe", "sphere+cchain")
    stats = agent.update(*random_rollout(agent))
    assert stats["reg/cchain"] > 0 and stats["reg/cchain_scale"] > 0
    cchain = _cchain(agent)
    assert cchain.updates_per_iteration == 2 * 4 and len(cchain.history) == 1
    restored = small_agent("topk_moe", "sphere+cchain")
    restored.load_state_dict(agent.state_dict())
    restored_cchain = _cchain(restored)
    assert list(restored_cchain.history) == list(cchain.history)
    torch.testing.assert_close(restored_cchain.reference[1], cchain.reference[1])
