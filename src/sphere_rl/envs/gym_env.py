"""Any registered Gymnasium environment with a flat Box observation and a Box action, as a task
named ``gym:<id>`` (e.g. ``gym:InvertedPendulum-v5``).

Useful for quick checks of the algorithm on standard control problems. Actions are rescaled from
``[-1, 1]`` to the environment's bounds, like every other task here. Success follows the H1 rule:
an episode succeeds once its return reaches the environment's registered ``reward_threshold``
(never, for environments that have none).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import gymnasium as gym
import numpy as np

GYM_PREFIX = "gym:"


def gym_id(task: str) -> str:
    return task[len(GYM_PREFIX) :]


@functools.cache
def gym_task_facts(task: str) -> tuple[int, int, int, float]:
    """``(obs_dim, act_dim, max_episode_steps, reward_threshold)``; ``ValueError`` if unusable."""
    env_id = gym_id(task)
    try:
        env = gym.make(env_id)
    except gym.error.Error as exc:
        raise ValueError(
            f"unknown Gymnasium environment {env_id!r} in task {task!r}: {exc}"
        ) from exc
    try:
        obs_space, act_space = env.observation_space, env.action_space
        if not (isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 1):
            raise ValueError(f"task {task!r}: needs a flat Box observation, got {obs_space}")
        if not (isinstance(act_space, gym.spaces.Box) and len(act_space.shape) == 1):
            raise ValueError(f"task {task!r}: needs a flat Box action space, got {act_space}")
        if not (np.isfinite(act_space.low).all() and np.isfinite(act_space.high).all()):
            raise ValueError(f"task {task!r}: the action bounds must be finite, got {act_space}")
        threshold = env.spec.reward_threshold if env.spec else None
        horizon = env.spec.max_episode_steps if env.spec else None
        return (
            obs_space.shape[0],
            act_space.shape[0],
            int(horizon or 1000),
            math.inf if threshold is None else float(threshold),
        )
    finally:
        env.close()


class GymTaskEnv(gym.Wrapper):
    """A Gymnasium environment with ``[-1, 1]`` actions, float32 observations and
    ``info["success"]`` (sticky: return so far >= the registered reward threshold)."""

    def __init__(self, task: str, seed: int | None = None) -> None:
        _, _, horizon, self.reward_threshold = gym_task_facts(task)
        env = gym.make(gym_id(task), max_episode_steps=horizon)
        super().__init__(gym.wrappers.RescaleAction(env, -1.0, 1.0))
        self.observation_space = gym.spaces.Box(
            -np.inf, np.inf, env.observation_space.shape, np.float32
        )
        self._first_seed = seed
        self._return = 0.0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is None:
            seed, self._first_seed = self._first_seed, None
        obs, info = self.env.reset(seed=seed, options=options)
        if seed is not None:
            self.env.action_space.seed(seed)
        self._return = 0.0
        info["success"] = 0.0
        return np.asarray(obs, np.float32), info

    def step(self, action: np.ndarray):
        obs, reward, terminated, truncated, info = self.env.step(np.clip(action, -1.0, 1.0))
        self._return += float(reward)
        info["success"] = float(self._return >= self.reward_threshold)
        return np.asarray(obs, np.float32), float(reward), terminated, truncated, info
