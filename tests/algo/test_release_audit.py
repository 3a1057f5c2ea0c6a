"""The training numerics of the second line-by-line audit of the release
(``/work/shared/reference/release-facts.md``), each against a hand computation, with the earlier
behaviour kept as an option."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sphere_rl.algo.buffer import RolloutBuffer
from sphere_rl.algo.ppo import normalize_advantages
from sphere_rl.config import ConfigError, build_config
from sphere_rl.methods import build_agent


@pytest.mark.parametrize("ddof", [0, 1])
def test_advantages_are_normalised_with_the_chosen_std(ddof):
    adv = [1.0, -2.0, 0.5, 4.0, 3.0]
    mean = sum(adv) / 5
    std = math.sqrt(sum((a - mean) ** 2 for a in adv) / (5 - ddof))  # by hand, float64
    expected = [(a - mean) / (std + 1e-8) for a in adv]
    got = normalize_advantages(torch.tensor(adv, dtype=torch.float64), ddof)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


def _minibatch_advantages(cfg_overrides):
    """The advantages PPOAgent.update hands to its one minibatch step."""
    cfg = build_config({"method": "ppo", "hidden": [4], "update_epochs": 1, "minibatch_size": 6,
                        "num_envs": 2, "num_steps": 3, "steps_per_task": 6, **cfg_overrides})  # fmt: skip
    agent = build_agent(cfg, 2, 1)
    seen = []
    agent._minibatch_step = lambda obs, act, lp, adv, ret: (
        seen.append(adv) or ({"v": torch.zeros(())}, 0.0)
    )
    buffer = RolloutBuffer.empty(3, 2, 2, 1, "cpu")
    adv = torch.tensor([[1.0, -2.0], [0.5, 4.0], [3.0, 0.0]])
    agent.update(buffer, adv, torch.zeros(3, 2))
    (mb,) = seen
    return adv.reshape(-1), mb


def test_update_normalises_with_the_population_std_by_default():
    raw, mb = _minibatch_advantages({})
    # The minibatch is a permutation of the whole rollout: its population std is the rollout's.
    pop = raw.double().std(correction=0)
    assert build_config({}).adv_std_ddof == 0
    torch.testing.assert_close(mb.double().std(correction=0), pop / (pop + 1e-8), rtol=1e-6, atol=0)
    _, legacy = _minibatch_advantages({"adv_std_ddof": 1})
    torch.testing.assert_close(legacy.double().std(correction=1), torch.tensor(1.0).double(),
                               rtol=1e-6, atol=0)  # fmt: skip


@pytest.mark.parametrize("value", [2, -1])
def test_adv_std_ddof_is_validated(value):
    with pytest.raises(ConfigError, match=r"adv_std_ddof must be one of \(0, 1\)"):
        build_config({"adv_std_ddof": value})
