"""The H1 environment against bare MuJoCo stepping of the same model.

Both loops follow the *same* trajectory (same reset noise, same random actions, same termination
rule), so they do identical physics; the difference in speed is the environment's Python work.
The test checks the identity; the speed ratio is printed (``pytest -m slow
tests/envs/test_h1_throughput.py -s``) but not asserted, since timings on a shared machine are
noise: ``benchmarks/env_throughput.py`` measures it (``docs/benchmarks.md``, target ≥ 0.85).
"""

import time

import mujoco
import numpy as np
import pytest

from sphere_rl.envs.h1 import H1_TASKS, make_h1_env

N_STEPS = 1000
REPEATS = 3


def _raw_steps_per_second(env, actions, seed):
    """Bare MuJoCo: replicate the env's reset and control mapping, skip rewards/observations."""
    base = env.unwrapped
    model, data = base.model, mujoco.MjData(base.model)
    low, high = model.actuator_ctrlrange.T
    # Same arithmetic as the env, so that both loops produce bit-identical controls.
    centre, half_range = (high + low) / 2.0, (high - low) / 2.0
    spec = base.task_spec
    rng = np.random.default_rng(seed)
    key = model.key("qpos0").id
    upright_id = model.body("torso_link").id

    def reset():
        mujoco.mj_resetDataKeyframe(model, data, key)
        data.qpos[:] += rng.uniform(-0.01, 0.01, size=model.nq)
        mujoco.mj_forward(model, data)

    def done():
        value = data.qpos[2] if spec.terminate_on == "pelvis_height" else data.xmat[upright_id, 8]
        return value < spec.terminate_below

    reset()
    start = time.perf_counter()
    for action in actions:
        data.ctrl[:] = np.clip(action.astype(np.float64), -1.0, 1.0) * half_range + centre
        mujoco.mj_step(model, data, nstep=10)
        if done():
            reset()
    return len(actions) / (time.perf_counter() - start), data.qpos.copy()


def _env_steps_per_second(env, actions, seed):
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return len(actions) / (time.perf_counter() - start), env.unwrapped.data.qpos.copy()


def measure(task: str, seed: int = 0) -> tuple[float, float]:
    """Best-of-``REPEATS`` steps/s of (environment, bare MuJoCo) on identical trajectories."""
    env = make_h1_env(task, seed=seed, max_episode_steps=10**9)
    actions = np.random.default_rng(seed).uniform(-1, 1, size=(N_STEPS, 19)).astype(np.float32)
    env_rates, raw_rates = [], []
    for _ in range(REPEATS):
        rate, env_final = _env_steps_per_second(env, actions, seed)
        env_rates.append(rate)
        rate, raw_final = _raw_steps_per_second(env, actions, seed)
        raw_rates.append(rate)
        np.testing.assert_array_equal(env_final, raw_final)  # same physics in both loops
    return max(env_rates), max(raw_rates)


@pytest.mark.slow
@pytest.mark.parametrize("task", list(H1_TASKS))
def test_env_steps_the_same_physics_as_bare_mujoco(task):
    env_rate, raw_rate = measure(task)  # asserts identical final states after every repeat
    print(
        f"{task}: env {env_rate:.0f} steps/s, raw mj_step {raw_rate:.0f} steps/s, "
        f"ratio {env_rate / raw_rate:.2f}"
    )
    assert env_rate > 0 and raw_rate > 0
