"""Deterministic evaluation of a policy on a task, and the held-out probe batch for diagnostics."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from sphere_rl.algo.ppo import PPOAgent
from sphere_rl.envs import make_vector_env
from sphere_rl.envs.vector import VectorTaskEnv
from sphere_rl.interrupts import raise_if_requested

# The release evaluates on 2 environments (SB3's evaluate_policy splits the episodes over them).
RELEASE_EVAL_ENVS = 2


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """``module.eval()`` inside (sparse routing for DS-MoE); its former mode restored after."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


@torch.no_grad()
def evaluate(
    agent: PPOAgent,
    task: str,
    episodes: int,
    seed: int,
    env_backend: str = "metaworld",
    **task_kwargs: Any,
) -> dict[str, float]:
    """Mean success and return of ``episodes`` deterministic episodes (the mean action).

    Each of ``episodes`` environments contributes its first episode, so the result depends only on
    the policy and ``seed``. The actor is put in ``eval()`` mode (sparse routing for DS-MoE) and the
    observation statistics are used frozen. ``task_kwargs`` go to the environments
    (:func:`sphere_rl.envs.registry.task_options`).
    """
    env = make_vector_env(task, num_envs=episodes, seed=seed, backend=env_backend, **task_kwargs)
    with contextlib.closing(env), eval_mode(agent.actor):
        obs = env.reset(seed=seed)
        success = np.full(episodes, np.nan)
        returns = np.full(episodes, np.nan)
        while np.isnan(success).any():
            raise_if_requested()
            actions = agent.actor(agent.obs_tensor(obs)).mean.cpu().numpy()
            step = env.step(actions)
            first = step.done & np.isnan(success)
            success[first] = step.episode_success[first]
            returns[first] = step.episode_return[first]
            obs = step.obs
    return {"success": float(success.mean()), "return": float(returns.mean())}


def release_episode_targets(episodes: int, num_envs: int) -> list[int]:
    """Episodes each environment contributes, as SB3's ``evaluate_policy`` splits them (5 + 5)."""
    return [(episodes + i) // num_envs for i in range(num_envs)]


def release_eval_env(
    task: str, episodes: int, seed: int, env_backend: str = "metaworld", **task_kwargs: Any
) -> VectorTaskEnv:
    """The release's eval envs of ``task``: 2 (fewer if fewer episodes), seeded at the first
    reset with ``seed``."""
    num_envs = min(RELEASE_EVAL_ENVS, episodes)
    return make_vector_env(task, num_envs=num_envs, seed=seed, backend=env_backend, **task_kwargs)


@torch.no_grad()
def evaluate_release(
    agent: PPOAgent, env: VectorTaskEnv, episodes: int, seed: int | None = None
) -> dict[str, float]:
    """The release's evaluation: ``episodes`` deterministic episodes run back to back on ``env``.

    ``env`` is reset once (``seed=None`` continues its random streams, so a kept environment starts
    every evaluation somewhere new), then stepped until each sub-environment has finished its share
    (:func:`release_episode_targets`); episodes beyond a share are run but not counted. An
    episode's success is the flag of its final step. The caller owns ``env`` (and its state).
    """
    targets = np.array(release_episode_targets(episodes, env.num_envs))
    counts = np.zeros_like(targets)
    success: list[float] = []
    returns: list[float] = []
    with eval_mode(agent.actor):
        obs = env.reset(seed=seed)
        while (counts < targets).any():
            raise_if_requested()
            actions = agent.actor(agent.obs_tensor(obs)).mean.cpu().numpy()
            step = env.step(actions)
            for i in np.flatnonzero(step.done & (counts < targets)):
                success.append(float(step.episode_final_success[i]))
                returns.append(float(step.episode_return[i]))
                counts[i] += 1
            obs = step.obs
    return {"success": float(np.mean(success)), "return": float(np.mean(returns))}


def probe_states(
    task: str,
    samples: int,
    seed: int,
    stride: int = 4,
    env_backend: str = "metaworld",
    **task_kwargs: Any,
) -> np.ndarray:
    """A fixed ``(samples, obs_dim)`` batch of raw states for the diagnostics.

    States come from uniformly random actions (a policy-independent distribution, so r_e(K) is
    comparable over training), keeping every ``stride``-th step to spread them along trajectories.
    """
    num_envs = min(8, samples)
    env = make_vector_env(task, num_envs=num_envs, seed=seed, backend=env_backend, **task_kwargs)
    rng = np.random.default_rng(seed)
    try:
        obs = env.reset(seed=seed)
        states = []
        while len(states) * num_envs < samples:
            for _ in range(stride):
                raise_if_requested()
                actions = rng.uniform(-1.0, 1.0, size=(num_envs, env.act_dim))
                obs = env.step(actions.astype(np.float32)).obs
            states.append(obs.copy())
    finally:
        env.close()
    return np.concatenate(states)[:samples]
