"""The VectorTaskEnv contract on the reference backend (sync and async), and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from sphere_rl.envs import VecStep, make_vector_env
from sphere_rl.envs.metaworld_env import MetaWorldTaskEnv
from sphere_rl.envs.vector import derive_seeds

TASK = "reach-v3"
HORIZON = 12  # short episodes so that a few dozen steps cross several autoresets


def _actions(num_envs: int, steps: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, size=(steps, num_envs, 4)).astype(np.float32)


def _stream(envs, seed: int | None, actions: np.ndarray) -> list[VecStep]:
    if seed is not None:
        envs.reset(seed=seed)
    return [envs.step(a) for a in actions]


def _assert_same_stream(a: list[VecStep], b: list[VecStep]) -> None:
    for step_a, step_b in zip(a, b, strict=True):
        for name in VecStep.__dataclass_fields__:
            np.testing.assert_array_equal(getattr(step_a, name), getattr(step_b, name), name)


def test_step_contract_against_manual_single_env_rollouts():
    num_envs, steps, seed = 2, 2 * HORIZON + 5, 3
    actions = _actions(num_envs, steps)
    envs = make_vector_env(TASK, num_envs=num_envs, max_episode_steps=HORIZON)
    assert (envs.task, envs.num_envs, envs.obs_dim, envs.act_dim) == (TASK, 2, 39, 4)
    assert envs.single_observation_space.shape == (39,)
    assert envs.single_action_space.shape == (4,)
    obs = envs.reset(seed=seed)
    assert obs.shape == (2, 39) and obs.dtype == np.float32
    vec = _stream(envs, None, actions)
    envs.close()

    for i, sub_seed in enumerate(derive_seeds(seed, num_envs)):
        env = MetaWorldTaskEnv(TASK, max_episode_steps=HORIZON)
        first, _ = env.reset(seed=sub_seed)
        np.testing.assert_array_equal(obs[i], first)
        total, success = 0.0, 0.0
        for t in range(steps):
            o, r, term, trunc, info = env.step(actions[t, i])
            total += r
            success = info["success"]
            step = vec[t]
            assert step.obs.shape == (2, 39) and step.obs.dtype == np.float32
            assert step.reward.dtype == np.float32 and step.terminated.dtype == bool
            assert step.episode_return.dtype == np.float64
            assert step.episode_length.dtype == np.int64
            assert step.episode_success.dtype == np.float32
            assert step.reward[i] == np.float32(r)
            assert (step.terminated[i], step.truncated[i]) == (term, trunc)
            np.testing.assert_array_equal(step.final_obs[i], o)
            if term or trunc:
                assert (t + 1) % HORIZON == 0
                assert step.episode_return[i] == pytest.approx(total, rel=1e-12)
                assert step.episode_length[i] == HORIZON
                assert step.episode_success[i] == success
                o, _ = env.reset()
                total = 0.0
                assert not np.array_equal(step.obs[i], step.final_obs[i])
            else:
                assert np.isnan(step.episode_return[i]) and np.isnan(step.episode_success[i])
                assert step.episode_length[i] == 0
            np.testing.assert_array_equal(step.obs[i], o)


@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_reset_seed_determines_all_later_episodes(vectorization):
    actions = _actions(2, HORIZON + 4, seed=1)
    envs = make_vector_env(
        TASK, num_envs=2, seed=0, vectorization=vectorization, max_episode_steps=HORIZON
    )
    try:
        first = _stream(envs, 5, actions)
        _stream(envs, None, actions)  # wander off, as a run would before a checkpoint
        _assert_same_stream(first, _stream(envs, 5, actions))
        other = _stream(envs, 6, actions)
        assert not np.array_equal(first[0].obs, other[0].obs)
        assert not np.array_equal(first[0].obs[0], first[0].obs[1])  # sub-envs differ
    finally:
        envs.close()
    if vectorization == "async":
        # A subprocess-backed run sees exactly what an in-process run sees.
        sync = make_vector_env(TASK, num_envs=2, max_episode_steps=HORIZON)
        _assert_same_stream(first, _stream(sync, 5, actions))
        sync.close()


def test_first_reset_uses_the_construction_seed():
    a = make_vector_env(TASK, num_envs=2, seed=9)
    b = make_vector_env(TASK, num_envs=2, seed=0)
    np.testing.assert_array_equal(a.reset(), b.reset(seed=9))
    a.close()
    b.close()


def test_out_of_range_actions_are_clipped():
    actions = _actions(2, 5) * 4
    envs = make_vector_env(TASK, num_envs=2)
    clipped = _stream(envs, 0, np.clip(actions, -1, 1))
    _assert_same_stream(clipped, _stream(envs, 0, actions))
    with pytest.raises(ValueError, match="shape"):
        envs.step(np.zeros((3, 4)))
    envs.close()


def test_step_before_reset_is_an_error():
    envs = make_vector_env(TASK)
    with pytest.raises(RuntimeError, match="reset"):
        envs.step(np.zeros((1, 4)))
    envs.close()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"task": "hammer-v4"}, "unknown task 'hammer-v4'.*'hammer-v3'"),
        ({"num_envs": 0}, "num_envs must be an integer >= 1"),
        ({"num_envs": 2.5}, "num_envs"),
        ({"num_envs": True}, "num_envs"),
        ({"vectorization": "threads"}, "unknown vectorization 'threads'; valid: sync, async"),
        ({"backend": "brax"}, "unknown backend 'brax'; valid backends: metaworld, envpool"),
        ({"task": "h1-walk", "backend": "envpool"}, "only runs MetaWorld tasks"),
        ({"layout": "random"}, "unknown layout 'random'"),
    ],
)
def test_bad_input_is_rejected_with_a_specific_message(kwargs, match):
    kwargs = {"task": TASK, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_vector_env(**kwargs)


def test_h1_tasks_dispatch_to_the_h1_package():
    try:
        import sphere_rl.envs.h1  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="make_h1_env"):
            make_vector_env("h1-stand")
        return
    envs = make_vector_env("h1-stand", num_envs=2, seed=0)
    assert (envs.obs_dim, envs.act_dim) == (51, 19)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(4, 2, 19))
    first = _stream(envs, 8, actions)
    assert first[0].obs.shape == (2, 51) and first[0].obs.dtype == np.float32
    _assert_same_stream(first, _stream(envs, 8, actions))  # reset noise follows the seed too
    assert not np.array_equal(first[0].obs[0], first[0].obs[1])
    envs.close()
