"""Shrink & Perturb: the given factors, every layer, at the given times."""

import pytest
import torch
from intervention_helpers import random_rollout, small_agent

from sphere_rl.interventions import ShrinkPerturb, shrink_perturb_
from sphere_rl.nn.layers import HIDDEN_GAIN


def test_shrinks_by_the_factor_and_adds_noise_of_the_given_scale():
    weight, bias = torch.randn(200, 300, dtype=torch.float64), torch.randn(200, dtype=torch.float64)
    w0, b0 = weight.clone(), bias.clone()
    shrink_perturb_(weight, bias, shrink=0.8, noise_std=0.0)
    torch.testing.assert_close(weight, 0.8 * w0)
    torch.testing.assert_close(bias, 0.8 * b0)
    shrink_perturb_(weight, bias, shrink=1.0, noise_std=0.05)
    noise = weight - 0.8 * w0
    assert noise.std().item() == pytest.approx(0.05, rel=0.02)
    assert noise.mean().abs().item() < 1e-3
    torch.testing.assert_close(bias, 0.8 * b0)


def _snp(agent) -> ShrinkPerturb:
    (snp,) = [cb for cb in agent.callbacks if isinstance(cb, ShrinkPerturb)]
    return snp


@pytest.mark.parametrize("arch", ["mlp", "topk_moe"])
def test_every_linear_layer_in_actor_and_critic(arch):
    agent = small_agent(arch, "snp", sp_shrink=0.5, sp_perturb=0.0)
    snp = _snp(agent)
    linears = [m for net in (agent.actor, agent.critic) for m in net.modules()
               if hasattr(m, "weight") and m.weight.dim() >= 2]  # fmt: skip
    assert len(snp.matrices) == len(linears)
    before = {name: p.clone() for name, p in agent.actor.named_parameters()}
    snp.after_optimizer_step(agent)
    for name, p in agent.actor.named_parameters():
        factor = 1.0 if name == "log_std" else 0.5
        torch.testing.assert_close(p, factor * before[name])


def test_noise_is_relative_to_the_initialisation_scale():
    agent = small_agent("mlp", "snp", sp_shrink=1.0, sp_perturb=0.1, hidden=[64, 64])
    square = agent.actor.trunk.linears[1].weight
    before = square.clone()
    _snp(agent).after_optimizer_step(agent)
    # A 64×64 orthogonal matrix with gain √2 has entries of standard deviation √2 / 8.
    assert (square - before).std().item() == pytest.approx(0.1 * HIDDEN_GAIN / 8, rel=0.05)


def test_period_and_task_boundaries():
    agent = small_agent("mlp", "snp", sp_shrink=0.5, sp_perturb=0.0, sp_period=2)
    snp, weight = _snp(agent), agent.actor.head.weight
    w0 = weight.clone()
    snp.on_task_start(agent, 1)
    snp.after_optimizer_step(agent)
    torch.testing.assert_close(weight, w0)
    snp.after_optimizer_step(agent)
    torch.testing.assert_close(weight, 0.5 * w0)

    agent = small_agent("mlp", "snp", sp_shrink=0.5, sp_perturb=0.0, sp_period=0)
    snp, weight = _snp(agent), agent.actor.head.weight
    w0 = weight.clone()
    agent.update(*random_rollout(agent))
    snp.on_task_start(agent, 0)
    w1 = weight.clone()
    assert not torch.equal(w1, 0.5 * w0)  # no shrink during a task, nor at the first task
    snp.on_task_start(agent, 1)
    torch.testing.assert_close(weight, 0.5 * w1)
    fresh = small_agent("mlp", "snp", sp_shrink=0.5, sp_perturb=0.0, sp_period=0)
    w_fresh = fresh.actor.head.weight.clone()
    _snp(fresh).on_task_start(fresh, 3)  # RL protocol: a fresh agent at a later task
    torch.testing.assert_close(fresh.actor.head.weight, w_fresh)
