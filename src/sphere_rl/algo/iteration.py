"""One PPO iteration, top to bottom: LR schedule → rollout (time-limit bootstrap) → GAE → update.

:func:`collect_rollout` steps the vector environments ``num_steps`` times with the current policy
and fills a :class:`~sphere_rl.algo.buffer.RolloutBuffer`; :func:`train_iteration` wraps it with the
learning-rate schedule, generalized advantage estimation and :meth:`PPOAgent.update
<sphere_rl.algo.ppo.PPOAgent.update>`. The continual runner calls :func:`train_iteration` once per
iteration and keeps the rest (checkpoints, evaluation, diagnostics, logs).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from torch import Tensor

from sphere_rl.algo.buffer import RolloutBuffer, compute_gae
from sphere_rl.algo.ppo import PPOAgent, schedule_progress
from sphere_rl.interrupts import raise_if_requested

if TYPE_CHECKING:
    from sphere_rl.config import ExperimentConfig
    from sphere_rl.envs.vector import VecStep

__all__ = ["Rollout", "StepEnv", "collect_rollout", "train_iteration"]


class StepEnv(Protocol):
    """What a rollout needs of a vector environment (:class:`~sphere_rl.envs.vector.VectorTaskEnv`
    is one): same-step autoreset, ``step`` returning a :class:`~sphere_rl.envs.vector.VecStep`."""

    num_envs: int
    obs_dim: int
    act_dim: int

    def step(self, actions: np.ndarray) -> VecStep: ...


@dataclass
class Rollout:
    """What :func:`collect_rollout` gathered, and where the environments stand after it."""

    buffer: RolloutBuffer  # (T, N, ...) storage; rewards include the time-limit bootstrap
    next_obs: np.ndarray  # (N, obs_dim) raw observation after the last step
    next_done: Tensor  # (N,) 1.0 where next_obs starts a new episode
    episode_success: list[float]  # one entry per episode that ended during the rollout
    episode_return: list[float]  # undiscounted, without the bootstrap


def collect_rollout(
    agent: PPOAgent, env: StepEnv, obs: np.ndarray, num_steps: int, gamma: float
) -> Rollout:
    """Act ``num_steps`` times in ``env`` from the raw ``(N, obs_dim)`` observations ``obs``.

    Episodes cut by a time limit (truncated, not terminated) get ``γ·V(final_obs)`` added to
    their last reward: the task did not end there, so its value must not be cut to zero. GAE
    then treats every ended episode alike (``dones``), which is right for terminations only
    because of this bootstrap. ``gamma`` must be the discount GAE uses.
    """
    device = agent.device
    buffer = RolloutBuffer.empty(num_steps, env.num_envs, env.obs_dim, env.act_dim, device)
    done = torch.zeros(env.num_envs, device=device)  # the first obs continues the last rollout's
    successes: list[float] = []
    returns: list[float] = []
    agent.actor.train()
    for step in range(num_steps):
        raise_if_requested()  # a signal stops the run here, not inside a library call
        agent.normalizer.update(obs)  # the statistics include every observation acted on
        obs_t = agent.obs_tensor(obs)
        actions, log_probs, values = agent.act(obs_t)
        result = env.step(actions.cpu().numpy())  # unclipped samples; the env clips
        reward = torch.as_tensor(result.reward, device=device)
        truncated_only = result.truncated & ~result.terminated
        if truncated_only.any():  # bootstrap the value of the state the time limit cut off
            final = agent.obs_tensor(result.final_obs[truncated_only])
            reward[torch.as_tensor(truncated_only)] += gamma * agent.value(final)
        buffer.obs[step], buffer.actions[step] = obs_t, actions
        buffer.log_probs[step], buffer.values[step] = log_probs, values
        # dones[t] flags obs t as an episode's first, so GAE lets no value flow back into it.
        buffer.rewards[step], buffer.dones[step] = reward, done
        done = torch.as_tensor(result.done, dtype=torch.float32, device=device)
        # Statistics arrive at the step an episode ends (result.obs is already the next one's).
        successes += result.episode_success[result.done].tolist()
        returns += result.episode_return[result.done].tolist()
        obs = result.obs
    return Rollout(buffer, obs, done, successes, returns)


def train_iteration(
    agent: PPOAgent, env: StepEnv, obs: np.ndarray, cfg: ExperimentConfig, iteration: int
) -> tuple[np.ndarray, dict[str, float]]:
    """Iteration ``iteration`` (0-based, within the task) of PPO on ``env``, from raw ``obs``.

    Returns the ``(N, obs_dim)`` observations to continue from and the iteration's statistics:
    ``sps``, ``learner_fraction`` (time share of GAE and the update), ``episode/count``,
    ``episode/success``, ``episode/return`` (means over the episodes that ended; NaN if none),
    then :meth:`PPOAgent.update <sphere_rl.algo.ppo.PPOAgent.update>`'s (``lr`` among them).
    """
    agent.schedule_learning_rate(
        schedule_progress(
            cfg.lr_progress, iteration, cfg.iterations_per_task, cfg.steps_per_iteration,
            cfg.steps_per_task,
        )
    )  # fmt: skip
    start = time.perf_counter()
    rollout = collect_rollout(agent, env, obs, cfg.num_steps, cfg.gamma)
    rollout_time = time.perf_counter() - start

    buffer = rollout.buffer
    next_value = agent.value(agent.obs_tensor(rollout.next_obs))
    advantages, returns = compute_gae(
        buffer.rewards, buffer.values, buffer.dones, next_value, rollout.next_done,
        cfg.gamma, cfg.gae_lambda,
    )  # fmt: skip
    update_stats = agent.update(buffer, advantages, returns)
    elapsed = time.perf_counter() - start

    stats = {
        "sps": cfg.steps_per_iteration / elapsed,
        "learner_fraction": 1.0 - rollout_time / elapsed,
        "episode/count": len(rollout.episode_success),
        "episode/success": _mean(rollout.episode_success),
        "episode/return": _mean(rollout.episode_return),
        **update_stats,
    }
    return rollout.next_obs, stats


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")
