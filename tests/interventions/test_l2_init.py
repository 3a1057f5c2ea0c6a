"""L2 Init: the penalty is the squared distance to the first task's initial actor."""

import torch
from intervention_helpers import random_rollout, small_agent

from sphere_rl.interventions import L2Init, l2_init_penalty


def test_penalty_value_and_gradient():
    params = [torch.randn(3, 4, requires_grad=True), torch.randn(5, requires_grad=True)]
    anchors = [torch.randn(3, 4), torch.randn(5)]
    value = l2_init_penalty(params, anchors)
    expected = sum((p - a).square().sum() for p, a in zip(params, anchors, strict=True))
    torch.testing.assert_close(value, expected)
    value.backward()
    torch.testing.assert_close(params[0].grad, 2 * (params[0] - anchors[0]).detach())


def test_zero_at_init_and_anchor_survives_a_checkpoint():
    agent = small_agent("topk_moe", "parseval+l2_init")  # anchors include the diagonal scales
    (l2,) = [r for r in agent.regularizers if isinstance(r, L2Init)]
    assert l2 in agent.callbacks
    assert len(l2.anchors) == len(list(agent.actor.parameters()))
    assert l2.penalty(None, None, agent) == 0
    agent.update(*random_rollout(agent))
    drift = l2.penalty(None, None, agent)
    assert drift > 0
    restored = small_agent("topk_moe", "parseval+l2_init")  # another random initialisation
    restored.load_state_dict(agent.state_dict())
    (l2_restored,) = [r for r in restored.regularizers if isinstance(r, L2Init)]
    torch.testing.assert_close(l2_restored.penalty(None, None, restored), drift)
