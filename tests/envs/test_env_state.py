"""Environment snapshots: get_state()/set_state() continue an environment exactly.

Each test snapshots an environment mid-episode, keeps stepping the original (so a snapshot that
aliased live simulator memory would be caught), restores the snapshot into a freshly built
environment with a *different* seed, replays the same actions and requires bit-identical
observations, rewards, episode ends and infos, across several episode boundaries (which exercises
the time limit, the per-reset layouts and reset-noise generators).
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from sphere_rl.envs import make_env, make_vector_env, resolve_tasks

HORIZON = 20  # short episodes, so a continuation crosses several time limits and resets
WARMUP = 27  # snapshot in the second episode, 7 steps in
STEPS = 70


def _actions(act_dim: int, steps: int, num_envs: int | None = None) -> np.ndarray:
    shape = (steps, act_dim) if num_envs is None else (steps, num_envs, act_dim)
    return np.random.default_rng(0).uniform(-1.2, 1.2, size=shape)


def _simulator(env):
    base = env.unwrapped
    return getattr(base, "_raw", base).data  # MetaWorld's env object, or H1's


def _single_rollout(env, actions: np.ndarray) -> list:
    """Every output of ``env`` under ``actions``, resetting at episode ends like a vector env, and
    where every body and site is (bodies and sites MetaWorld moves in the model included)."""
    out = []
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        data = _simulator(env)
        out.append((obs.tobytes(), reward, terminated, truncated, repr(sorted(info.items()))))
        out.append((data.xpos.tobytes(), data.site_xpos.tobytes()))
        if terminated or truncated:
            obs, info = env.reset()
            out.append((obs.tobytes(), repr(sorted(info.items()))))
    return out


def _snapshot_then_compare(task: str) -> None:
    act_dim = make_env(task).action_space.shape[0]
    actions = _actions(act_dim, WARMUP + STEPS)
    original = make_env(task, seed=3, max_episode_steps=HORIZON)
    original.reset()
    for a in actions[:WARMUP]:
        *_, terminated, truncated, _ = original.step(a)
        if terminated or truncated:
            original.reset()
    snapshot = original.get_state()
    expected = _single_rollout(original, actions[WARMUP:])

    restored = make_env(task, seed=11, max_episode_steps=HORIZON)
    restored.set_state(pickle.loads(pickle.dumps(snapshot)))  # as a checkpoint stores it
    assert _single_rollout(restored, actions[WARMUP:]) == expected

    # The comparison has teeth: the other seed alone gives another stream.
    unrestored = make_env(task, seed=11, max_episode_steps=HORIZON)
    unrestored.reset()
    assert _single_rollout(unrestored, actions[WARMUP:]) != expected


# reach: MetaWorld keeps pad positions as live views of data.xpos; peg-unplug-side and shelf-place
# move bodies in the model at every reset; window-close reads state left by reset_model.
@pytest.mark.parametrize(
    "task", ["reach-v3", "peg-unplug-side-v3", "shelf-place-v3", "window-close-v3"]
)
def test_metaworld_snapshot_continues_exactly(task):
    _snapshot_then_compare(task)


@pytest.mark.slow
@pytest.mark.parametrize("task", resolve_tasks("cw10"))
def test_every_cw10_snapshot_continues_exactly(task):
    _snapshot_then_compare(task)


@pytest.mark.parametrize("task", ["h1-stand", "h1-pole"])
def test_h1_snapshot_continues_exactly(task):
    _snapshot_then_compare(task)


def _vector_rollout(envs, actions: np.ndarray) -> list[tuple]:
    fields = ("obs", "reward", "terminated", "truncated", "final_obs", "episode_return",
              "episode_length", "episode_success")  # fmt: skip
    steps = [envs.step(a) for a in actions]
    return [tuple(getattr(step, f).tobytes() for f in fields) for step in steps]


@pytest.mark.parametrize(
    ("task", "source", "target"),
    [
        ("reach-v3", "sync", "async"),
        ("h1-walk", "async", "sync"),
    ],
)
def test_vector_snapshot_continues_exactly_across_vectorizations(task, source, target):
    """A snapshot (episode accumulators included) taken from one vectorization continues on the
    other: sync states come from the envs in-process, async ones through the worker pipes."""
    num_envs = 2
    act_dim = make_env(task).action_space.shape[0]
    actions = _actions(act_dim, WARMUP + STEPS, num_envs)
    with make_vector_env(
        task, num_envs, seed=3, vectorization=source, max_episode_steps=HORIZON
    ) as original:
        original.reset()
        for a in actions[:WARMUP]:
            original.step(a)
        assert original.supports_state and not original.at_episode_start
        snapshot = pickle.loads(pickle.dumps(original.get_state()))
        expected = _vector_rollout(original, actions[WARMUP:])
    with make_vector_env(
        task, num_envs, seed=5, vectorization=target, max_episode_steps=HORIZON
    ) as restored:
        obs = restored.set_state(snapshot)
        np.testing.assert_array_equal(obs, snapshot["obs"])
        assert _vector_rollout(restored, actions[WARMUP:]) == expected
    # The episodes running at the snapshot ended at the time limit, their lengths counting the
    # steps before the snapshot (unless H1 fell earlier).
    first_end = np.frombuffer(expected[HORIZON - WARMUP % HORIZON - 1][6], dtype=np.int64)
    truncated = np.frombuffer(expected[HORIZON - WARMUP % HORIZON - 1][3], dtype=bool)
    assert truncated.any() and (first_end[truncated] == HORIZON).all()


def test_snapshot_of_another_task_or_size_is_refused():
    with make_vector_env("reach-v3", 2, seed=0) as envs:
        with pytest.raises(RuntimeError, match="call reset"):
            envs.get_state()
        envs.reset()
        snapshot = envs.get_state()
    with make_vector_env("reach-v3", 3, seed=0) as bigger:
        with pytest.raises(
            ValueError, match=r"'reach-v3' × 2 cannot be loaded into 'reach-v3' × 3"
        ):
            bigger.set_state(snapshot)
    with make_vector_env("push-v3", 2, seed=0) as other:
        with pytest.raises(ValueError, match="cannot be loaded"):
            other.set_state(snapshot)


def test_an_h1_physics_state_of_another_size_is_refused_and_the_env_keeps_its_own():
    env = make_env("h1-walk", seed=0)
    env.reset()
    state = env.unwrapped.get_state()
    size = state["physics"].shape[0]
    with pytest.raises(ValueError, match=rf"physics state has shape \({size - 1},\), this model "
                       rf"needs \({size},\)"):  # fmt: skip
        env.unwrapped.set_state({**state, "physics": state["physics"][:-1]})
    np.testing.assert_array_equal(env.unwrapped.get_state()["physics"], state["physics"])


def test_envpool_cannot_snapshot():
    pytest.importorskip("envpool")
    with make_vector_env("push-wall-v3", 2, seed=0, backend="envpool") as envs:
        assert not envs.supports_state
        envs.reset()
        assert envs.at_episode_start
        envs.step(np.zeros((2, 4)))
        assert not envs.at_episode_start
        with pytest.raises(NotImplementedError, match="cannot snapshot"):
            envs.get_state()
