"""The envpool backend: the same contract as the reference, seeding, refusals and parity."""

from __future__ import annotations

import numpy as np
import pytest

from sphere_rl.envs import VecStep, make_vector_env
from sphere_rl.envs.envpool_backend import ENVPOOL_PARITY, envpool_task_id
from sphere_rl.envs.parity import check_parity

VERIFIED = sorted(task for task, reason in ENVPOOL_PARITY.items() if reason is None)
REFUSED = sorted(task for task, reason in ENVPOOL_PARITY.items() if reason is not None)
TASK = "push-wall-v3"
HORIZON = 12


def _envs(num_envs: int = 2, **kwargs):
    return make_vector_env(
        TASK, num_envs=num_envs, backend="envpool", max_episode_steps=HORIZON, **kwargs
    )


def _run(envs, seed: int | None, steps: int) -> list[VecStep]:
    actions = np.random.default_rng(0).uniform(-1.5, 1.5, size=(steps, envs.num_envs, 4))
    if seed is not None:
        envs.reset(seed=seed)
    return [envs.step(a) for a in actions]


def test_task_ids():
    assert envpool_task_id("handle-press-side-v3") == "MetaWorld/HandlePressSide-v3"


def test_same_step_autoreset_and_episode_statistics():
    envs = _envs()
    assert (envs.obs_dim, envs.act_dim) == (39, 4)
    obs = envs.reset(seed=0)
    assert obs.shape == (2, 39) and obs.dtype == np.float32
    assert np.all(obs[:, 36:39] != 0)  # goal-observable, not envpool's default hidden goal
    steps = _run(envs, None, 3 * HORIZON)
    envs.close()
    returns = np.zeros(2)
    for t, step in enumerate(steps):
        returns += step.reward
        assert step.obs.dtype == step.final_obs.dtype == np.float32
        ended = (t + 1) % HORIZON == 0
        # Exactly HORIZON steps per episode: envpool's own next-step reset must not add one.
        assert np.all(step.truncated == ended) and not step.terminated.any()
        if ended:
            np.testing.assert_allclose(step.episode_return, returns, rtol=1e-5)
            assert np.all(step.episode_length == HORIZON)
            assert np.all(np.isin(step.episode_success, [0.0, 1.0]))
            assert not np.allclose(step.obs[:, 4:7], step.final_obs[:, 4:7])  # new layout
            np.testing.assert_array_equal(step.obs[:, 18:22], step.obs[:, 0:4])  # fresh stack
            returns[:] = 0.0
        else:
            np.testing.assert_array_equal(step.obs, step.final_obs)
            assert np.all(np.isnan(step.episode_return)) and np.all(step.episode_length == 0)


def test_reset_seed_determines_all_later_episodes():
    envs = _envs()
    first = _run(envs, 4, 2 * HORIZON)
    _run(envs, None, 5)
    again = _run(envs, 4, 2 * HORIZON)
    fresh = _run(_envs(), 4, 2 * HORIZON)
    other = _run(envs, 5, 2)
    for a, b, c in zip(first, again, fresh, strict=True):
        for name in VecStep.__dataclass_fields__:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), name)
            np.testing.assert_array_equal(getattr(a, name), getattr(c, name), name)
    assert not np.array_equal(first[0].obs, other[0].obs)
    # Sub-environment i's stream does not depend on how many siblings it has.
    np.testing.assert_array_equal(_envs(num_envs=1).reset(seed=4)[0], envs.reset(seed=4)[0])


def test_refusals_name_the_reason():
    for task in REFUSED:
        with pytest.raises(ValueError, match="failed the parity check"):
            make_vector_env(task, backend="envpool")
    with pytest.raises(ValueError, match="not been parity-checked"):
        make_vector_env("basketball-v3", backend="envpool")
    with pytest.raises(ValueError, match="layout='per_reset'"):
        make_vector_env(TASK, backend="envpool", layout="fixed")


def test_hammer_is_refused():
    # The port accumulates hammer's goal position from one episode to the next (see the docs).
    assert ENVPOOL_PARITY["hammer-v3"] is not None


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_parity_check_passes_on_a_verified_task():
    result = check_parity(TASK, num_envs=2, episodes_per_env=2)
    assert result.passed, result.failures
    assert result.episodes == 4 and result.action_err == 0.0


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("task", sorted(ENVPOOL_PARITY))
def test_parity_table_is_reproduced(task):
    result = check_parity(task)  # the settings of the documented table
    assert result.passed == (ENVPOOL_PARITY[task] is None), result.failures
