"""Deterministic evaluation of a policy on a task, and the held-out probe batch for diagnostics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sphere_rl.algo.ppo import PPOAgent
from sphere_rl.envs import make_env, make_vector_env


@torch.no_grad()
def evaluate(
    agent: PPOAgent,
    task: str,
    episodes: int,
    seed: int,
    env_backend: str = "metaworld",
) -> dict[str, float]:
    """Mean success and return of ``episodes`` deterministic episodes (the mean action).

    Each of ``episodes`` environments contributes its first episode, so the result depends only on
    the policy and ``seed``. The actor is put in ``eval()`` mode (sparse routing for DS-MoE) and the
    observation statistics are used frozen.
    """
    env = make_vector_env(task, num_envs=episodes, seed=seed, backend=env_backend)
    was_training = agent.actor.training
    agent.actor.eval()
    try:
        obs = env.reset(seed=seed)
        success = np.full(episodes, np.nan)
        returns = np.full(episodes, np.nan)
        while np.isnan(success).any():
            actions = agent.actor(agent.obs_tensor(obs)).mean.cpu().numpy()
            step = env.step(actions)
            first = step.done & np.isnan(success)
            success[first] = step.episode_success[first]
            returns[first] = step.episode_return[first]
            obs = step.obs
    finally:
        agent.actor.train(was_training)
        env.close()
    return {"success": float(success.mean()), "return": float(returns.mean())}


def probe_states(
    task: str, samples: int, seed: int, stride: int = 4, env_backend: str = "metaworld"
) -> np.ndarray:
    """A fixed ``(samples, obs_dim)`` batch of raw states for the diagnostics.

    States come from uniformly random actions (a policy-independent distribution, so r_e(K) is
    comparable over training), keeping every ``stride``-th step to spread them along trajectories.
    """
    num_envs = min(8, samples)
    env = make_vector_env(task, num_envs=num_envs, seed=seed, backend=env_backend)
    rng = np.random.default_rng(seed)
    try:
        obs = env.reset(seed=seed)
        states = []
        while len(states) * num_envs < samples:
            for _ in range(stride):
                actions = rng.uniform(-1.0, 1.0, size=(num_envs, env.act_dim))
                obs = env.step(actions.astype(np.float32)).obs
            states.append(obs.copy())
    finally:
        env.close()
    return np.concatenate(states)[:samples]


@torch.no_grad()
def record_video(
    agent: PPOAgent,
    task: str,
    path: Path,
    seed: int,
    every: int = 2,
    width: int = 320,
    height: int = 240,
) -> dict[str, float]:
    """Run one deterministic episode of ``task`` and save every ``every``-th frame as a GIF.

    Returns the episode's ``success`` and ``return``.
    """
    from PIL import Image

    from sphere_rl.envs.render import render_frame

    env = make_env(task, seed=seed)
    was_training = agent.actor.training
    agent.actor.eval()
    frames, total, success = [], 0.0, 0.0
    try:
        obs, _ = env.reset(seed=seed)
        done, step = False, 0
        while not done:
            if step % every == 0:
                frames.append(Image.fromarray(render_frame(env, width, height)))
            action = agent.actor(agent.obs_tensor(obs[None])).mean[0].cpu().numpy()
            obs, reward, terminated, truncated, info = env.step(action)
            total += reward
            success = float(info["success"])
            done, step = terminated or truncated, step + 1
    finally:
        agent.actor.train(was_training)
        env.close()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fps = 25  # MetaWorld and H1 both step at ~50-80 Hz; every 2nd frame plays near real time
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=1000 // fps, loop=0)
    return {"success": success, "return": total}
