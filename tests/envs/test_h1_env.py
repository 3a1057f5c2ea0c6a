"""H1 environments: spaces, rewards on hand-set states, terminations, seeding, success, errors."""

import dataclasses
import hashlib
import subprocess
import sys
import textwrap

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from sphere_rl.envs.h1 import H1_TASKS, H1Env, H1TaskSpec, make_h1_env
from sphere_rl.envs.h1 import rewards as R
from sphere_rl.envs.h1.model import QPOS0

TASKS = ("h1-stand", "h1-walk", "h1-run", "h1-pole", "h1-slide")


def _set_state(env, qpos=None, qvel=None):
    """Overwrite the simulator state and recompute derived quantities (positions, sensors)."""
    base = env.unwrapped
    if qpos is not None:
        base.data.qpos[:] = qpos
    if qvel is not None:
        base.data.qvel[:] = qvel
    mujoco.mj_forward(base.model, base.data)
    return base.task_spec.compute_reward(base.readout)


def _rollout(env, actions, seed=None):
    obs, _ = env.reset(seed=seed)
    observations, rewards = [obs], []
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            break
    return np.array(observations), np.array(rewards)


@pytest.fixture(scope="module")
def walk():
    return make_h1_env("h1-walk", seed=0)


def test_registry_contents():
    assert tuple(H1_TASKS) == TASKS
    bars = {name: spec.success_bar for name, spec in H1_TASKS.items()}
    assert bars == {"h1-stand": 800, "h1-walk": 700, "h1-run": 700, "h1-pole": 700, "h1-slide": 700}
    speeds = {name: spec.move_speed for name, spec in H1_TASKS.items()}
    assert speeds == {"h1-stand": 0, "h1-walk": 1, "h1-run": 5, "h1-pole": 0.5, "h1-slide": 1}
    assert "qpos[2]" in H1_TASKS["h1-walk"].termination
    assert "0.5" in H1_TASKS["h1-pole"].termination
    assert "upright" in H1_TASKS["h1-slide"].termination
    with pytest.raises(dataclasses.FrozenInstanceError):
        H1_TASKS["h1-walk"].success_bar = 1.0


@pytest.mark.parametrize("task", TASKS)
def test_spaces_and_step_contract(task):
    env = make_h1_env(task, seed=3)
    assert isinstance(env, gym.wrappers.TimeLimit)
    assert env.observation_space.shape == (51,) and env.observation_space.dtype == np.float32
    assert env.action_space.shape == (19,)
    np.testing.assert_array_equal(env.action_space.low, -1.0)
    np.testing.assert_array_equal(env.action_space.high, 1.0)
    obs, info = env.reset()
    assert obs.shape == (51,) and obs.dtype == np.float32
    assert info["success"] == 0.0
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs.shape == (51,) and obs.dtype == np.float32
    assert isinstance(reward, float) and 0.0 <= reward <= 1.0
    assert isinstance(terminated, bool) and truncated is False
    assert info["success"] in (0.0, 1.0)
    for key in ("standing", "upright", "small_control", "stand_reward"):
        assert 0.0 <= info[key] <= 1.0
    assert ("dont_move" if task == "h1-stand" else "move") in info
    assert env.unwrapped.dt == pytest.approx(0.02)


def test_observation_is_qpos_then_qvel(walk):
    obs, _ = walk.reset(seed=1)
    base = walk.unwrapped
    np.testing.assert_array_equal(
        obs, np.concatenate([base.data.qpos, base.data.qvel]).astype(np.float32)
    )
    # Reset noise is uniform in [-0.01, 0.01] on every qpos entry; velocities start at zero.
    assert np.abs(base.data.qpos - QPOS0).max() <= 0.01
    assert np.abs(base.data.qpos - QPOS0).max() > 0
    np.testing.assert_array_equal(base.data.qvel, 0.0)


def test_actions_are_clipped_and_mapped_to_control_range(walk):
    walk.reset(seed=0)
    base = walk.unwrapped
    low, high = base.model.actuator_ctrlrange.T
    walk.step(np.full(19, 5.0, np.float32))
    np.testing.assert_allclose(base.data.ctrl, high)
    walk.step(-np.ones(19))
    np.testing.assert_allclose(base.data.ctrl, low)
    walk.step(np.zeros(19))
    np.testing.assert_allclose(base.data.ctrl, (low + high) / 2)


def test_start_pose_reward_components(walk):
    walk.reset(seed=0)
    _, info = _set_state(walk, QPOS0, np.zeros(25))
    assert info["standing"] == pytest.approx(1.0)  # head at 1.68 m > 1.65 m
    assert info["upright"] == pytest.approx(1.0)
    assert 0.8 <= info["small_control"] <= 1.0
    assert info["move"] == pytest.approx(1 / 6)  # standing still earns the floor of move


def test_stand_reward_at_rest_is_near_small_control():
    env = make_h1_env("h1-stand", seed=0)
    env.reset()
    reward, info = _set_state(env, QPOS0, np.zeros(25))
    assert info["dont_move"] == pytest.approx(1.0)
    assert reward == pytest.approx(info["small_control"] * info["stand_reward"])


@pytest.mark.parametrize(("task", "speed"), [("h1-walk", 1.0), ("h1-run", 5.0), ("h1-pole", 0.5)])
def test_moving_at_target_speed_maxes_move(task, speed):
    env = make_h1_env(task, seed=0)
    env.reset()
    qvel = np.zeros(25)
    qvel[0] = speed  # translate the whole robot forward: the centre of mass moves at `speed`
    _, info = _set_state(env, QPOS0, qvel)
    assert info["move"] == pytest.approx(1.0)
    qvel[0] = speed / 2
    _, info = _set_state(env, QPOS0, qvel)
    assert info["move"] == pytest.approx((5 * 0.5 + 1) / 6)
    qvel[0] = -1.0
    _, info = _set_state(env, QPOS0, qvel)
    assert info["move"] == pytest.approx(1 / 6)


def test_stand_penalises_drift():
    env = make_h1_env("h1-stand", seed=0)
    env.reset()
    qvel = np.zeros(25)
    qvel[1] = 2.0  # sideways at the margin speed: the y score is 0.1, the x score 1
    _, info = _set_state(env, QPOS0, qvel)
    assert info["dont_move"] == pytest.approx((1.0 + 0.1) / 2)


def test_fallen_robot_scores_low_and_upside_down_scores_zero(walk):
    walk.reset(seed=0)
    lying = QPOS0.copy()
    lying[2] = 0.3
    lying[3:7] = (np.cos(np.pi / 4), 0.0, np.sin(np.pi / 4), 0.0)  # pitched 90 degrees
    _, info = _set_state(walk, lying)
    assert info["standing"] < 0.01
    assert info["upright"] == pytest.approx(1 - 0.9 / 1.9, abs=1e-6)  # upright = 0: linear ramp
    flipped = QPOS0.copy()
    flipped[3:7] = (0.0, 1.0, 0.0, 0.0)
    _, info = _set_state(walk, flipped)
    assert info["upright"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    ("task", "height", "terminated"),
    [
        ("h1-walk", 0.19, True),
        ("h1-walk", 0.21, False),
        ("h1-stand", 0.1, True),
        ("h1-run", 0.1, True),
        ("h1-pole", 0.45, True),
        ("h1-pole", 0.55, False),
        ("h1-slide", 0.1, False),  # slide only checks the torso orientation
    ],
)
def test_pelvis_height_termination(task, height, terminated):
    env = make_h1_env(task, seed=0)
    env.reset()
    qpos = QPOS0.copy()
    qpos[2] = height
    _set_state(env, qpos)
    base = env.unwrapped
    assert base.task_spec.is_terminated(base.readout) is terminated


def test_slide_terminates_on_torso_tilt_and_uses_head_above_feet():
    env = make_h1_env("h1-slide", seed=0)
    env.reset()
    base = env.unwrapped
    tilted = QPOS0.copy()
    angle = np.arccos(0.05)  # torso z axis at 0.05 of vertical
    tilted[3:7] = (np.cos(angle / 2), np.sin(angle / 2), 0.0, 0.0)
    _set_state(env, tilted)
    assert base.task_spec.is_terminated(base.readout)
    _, info = _set_state(env, QPOS0)
    assert not base.task_spec.is_terminated(base.readout)
    head, (left, right) = base.readout.head_height(), base.readout.foot_heights()
    assert head - left > 1.2 and head - right > 1.2
    assert info["standing"] == pytest.approx(1.0)
    assert R.standing_above_feet(1.9, 1.0, 0.0) == pytest.approx(
        R.tolerance(0.9, bounds=(1.2, R.INF), margin=0.45)
    )
    assert info["upright"] == pytest.approx(1.0)
    # Slide tolerates a torso leaning to upright 0.7 (bound 0.5); walk (bound 0.9) does not.
    leaning = QPOS0.copy()
    angle = np.arccos(0.7)
    leaning[3:7] = (np.cos(angle / 2), 0.0, np.sin(angle / 2), 0.0)
    _, info = _set_state(env, leaning)
    assert base.readout.torso_upright() == pytest.approx(0.7)
    assert info["upright"] == 1.0
    walk = make_h1_env("h1-walk", seed=0)
    walk.reset()
    _, walk_info = _set_state(walk, leaning)
    assert walk_info["upright"] == pytest.approx(1 - 0.2 / 1.9)


def test_pole_collision_is_detected_and_discounts_reward():
    env = make_h1_env("h1-pole", seed=0)
    env.reset()
    reward, info = _set_state(env, QPOS0)
    assert info["collision_discount"] == 1.0
    assert reward == pytest.approx(
        0.5 * info["small_control"] * info["stand_reward"] + 0.5 * info["move"]
    )
    # Put the robot against the pole at (x, y) = (2, 0): the torso overlaps it.
    qpos = QPOS0.copy()
    qpos[0], qpos[1] = 2.0, 0.08
    reward, info = _set_state(env, qpos)
    base = env.unwrapped
    contacts = base.data.contact.geom
    names = {base.model.geom(g).name for pair in contacts for g in pair}
    assert any(name.startswith("pole_r2_") for name in names)
    assert info["collision_discount"] == pytest.approx(0.1)
    undiscounted = 0.5 * info["small_control"] * info["stand_reward"] + 0.5 * info["move"]
    assert reward == pytest.approx(0.1 * undiscounted)


def test_pole_barrier_contact_is_not_discounted():
    env = make_h1_env("h1-pole", seed=0)
    env.reset()
    qpos = QPOS0.copy()
    qpos[0] = -0.5  # backs into the barrier behind the start, no pole nearby
    _, info = _set_state(env, qpos)
    base = env.unwrapped
    assert base.data.ncon > 0
    names = {base.model.geom(g).name for pair in base.data.contact.geom for g in pair}
    assert "behind_barrier" in names
    assert info["collision_discount"] == 1.0


def test_same_seed_same_trajectory_different_seed_different():
    actions = np.random.default_rng(7).uniform(-1, 1, size=(40, 19)).astype(np.float32)
    env_a, env_b = make_h1_env("h1-walk", seed=11), make_h1_env("h1-walk", seed=11)
    obs_a, rew_a = _rollout(env_a, actions)
    obs_b, rew_b = _rollout(env_b, actions)
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(rew_a, rew_b)
    # reset(seed=s) on a used environment reproduces the factory-seeded episode.
    obs_c, rew_c = _rollout(env_a, actions, seed=11)
    np.testing.assert_array_equal(obs_a, obs_c)
    np.testing.assert_array_equal(rew_a, rew_c)
    obs_d, _ = _rollout(make_h1_env("h1-walk", seed=12), actions[:1])
    assert not np.array_equal(obs_a[0], obs_d[0])
    # Consecutive unseeded resets continue the seeded stream: a new, but reproducible, start.
    second_a, _ = env_a.reset()
    second_b, _ = env_b.reset()
    second_b, _ = env_b.reset(seed=11)
    second_b, _ = env_b.reset()
    np.testing.assert_array_equal(second_a, second_b)
    assert not np.array_equal(second_a, obs_a[0])


def _trajectory_digest(task, seed, n_steps):
    env = make_h1_env(task, seed=seed)
    actions = np.random.default_rng(seed).uniform(-1, 1, size=(n_steps, 19)).astype(np.float32)
    obs, rewards = _rollout(env, actions)
    return hashlib.sha256(obs.tobytes() + rewards.tobytes()).hexdigest()


def test_trajectory_is_reproducible_in_a_fresh_process():
    script = textwrap.dedent(
        """
        import hashlib, numpy as np
        from sphere_rl.envs.h1 import make_h1_env
        env = make_h1_env("h1-pole", seed=5)
        actions = np.random.default_rng(5).uniform(-1, 1, size=(25, 19)).astype(np.float32)
        obs, _ = env.reset()
        observations, rewards = [obs], []
        for action in actions:
            obs, reward, terminated, truncated, _ = env.step(action)
            observations.append(obs)
            rewards.append(reward)
            if terminated or truncated:
                break
        blob = np.array(observations).tobytes() + np.array(rewards).tobytes()
        print(hashlib.sha256(blob).hexdigest())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == _trajectory_digest("h1-pole", 5, 25)


def test_success_flag_tracks_return_against_the_bar():
    spec = H1_TASKS["h1-walk"]
    assert not spec.is_success(699.999) and spec.is_success(700.0) and spec.is_success(850.0)
    assert not H1_TASKS["h1-stand"].is_success(799.0) and H1_TASKS["h1-stand"].is_success(800.0)

    # A run's returns are reproducible, so a bar equal to the return after 10 steps must flip
    # info["success"] from 0 to 1 exactly at step 10 and keep it at 1.
    hold = np.zeros(19, np.float32)
    env = make_h1_env("h1-walk", seed=4)
    env.reset()
    returns = np.cumsum([env.step(hold)[1] for _ in range(15)])
    low_bar = dataclasses.replace(spec, success_bar=float(returns[9]))
    env = gym.wrappers.TimeLimit(H1Env(low_bar), max_episode_steps=1000)
    env.reset(seed=4)
    flags = [env.step(hold)[4]["success"] for _ in range(15)]
    assert flags == [0.0] * 9 + [1.0] * 6
    # A new episode starts from zero return.
    env.reset(seed=4)
    assert env.step(hold)[4]["success"] == 0.0


def test_time_limit_truncates():
    env = make_h1_env("h1-walk", seed=0, max_episode_steps=3)
    env.reset()
    flags = [env.step(np.zeros(19))[3] for _ in range(3)]
    assert flags == [False, False, True]
    assert make_h1_env("h1-walk")._max_episode_steps == 1000


def test_bad_inputs_raise_clear_errors(walk):
    with pytest.raises(ValueError, match=r"unknown H1 task 'h1-fly'.*h1-stand.*h1-slide"):
        make_h1_env("h1-fly")
    with pytest.raises(ValueError, match="unknown H1 task"):
        make_h1_env("walk")
    with pytest.raises(ValueError, match="collision mode"):
        make_h1_env("h1-walk", collision="voxels")
    with pytest.raises(ValueError, match="reset_noise"):
        make_h1_env("h1-walk", reset_noise=-1.0)
    with pytest.raises(ValueError, match="max_episode_steps"):
        make_h1_env("h1-walk", max_episode_steps=0)
    with pytest.raises(TypeError):
        make_h1_env("h1-walk", frame_skip=5)
    with pytest.raises(ValueError, match="render_mode"):
        make_h1_env("h1-walk", render_mode="human")
    with pytest.raises(ValueError, match="unknown reward rule"):
        H1TaskSpec("custom", "flat", "dance", 1.0, 700.0, "pelvis_height", 0.2)
    walk.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(19,\)"):
        walk.step(np.zeros(18))
    with pytest.raises(ValueError, match=r"shape \(19,\)"):
        walk.step(0.5)
    with pytest.raises(ValueError, match="NaN or infinite"):
        walk.step(np.full(19, np.nan))
