"""One PPO iteration without the runner: the rollout collector and its time-limit bootstrap on a
scripted vector environment (hand-computed buffer), and train_iteration's schedule and stats."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from sphere_rl.algo.iteration import collect_rollout, train_iteration
from sphere_rl.config import build_config
from sphere_rl.envs.vector import VecStep
from sphere_rl.methods import build_agent

N, T, OBS_DIM, ACT_DIM = 3, 4, 2, 1
GAMMA = 0.5
# (step, env) → how the episode ends there. Env 2's episode at step 2 is both terminated and
# truncated: a termination, so no bootstrap.
TRUNCATED = {(1, 0), (2, 2), (3, 0)}
TERMINATED = {(1, 1), (2, 2)}


class ScriptedEnv:
    """``N`` environments on a script, in the VecStep contract (same-step autoreset).

    After step ``s`` env ``n`` observes ``[n, s + 1]`` and gets reward ``n + 1 + 10 s``; an episode
    that ends there has last observation ``[10 (n + 1), s + 1]`` (``final_obs``), success 1.0 on
    even steps and return ``100 s + n``.
    """

    num_envs, obs_dim, act_dim = N, OBS_DIM, ACT_DIM

    def __init__(self) -> None:
        self.steps, self.actions = 0, []

    def reset(self) -> np.ndarray:
        return np.array([[n, 0] for n in range(N)], dtype=np.float32)

    def step(self, actions: np.ndarray) -> VecStep:
        s = self.steps
        self.steps += 1
        self.actions.append(actions.copy())
        terminated = np.array([(s, n) in TERMINATED for n in range(N)])
        truncated = np.array([(s, n) in TRUNCATED for n in range(N)])
        done = terminated | truncated
        obs = np.array([[n, s + 1] for n in range(N)], dtype=np.float32)
        final_obs = np.where(done[:, None], [[10 * (n + 1), s + 1] for n in range(N)], obs)
        return VecStep(
            obs=obs,
            reward=np.array([n + 1 + 10 * s for n in range(N)], dtype=np.float32),
            terminated=terminated,
            truncated=truncated,
            final_obs=final_obs.astype(np.float32),
            episode_return=np.where(done, [100.0 * s + n for n in range(N)], np.nan),
            episode_length=np.where(done, s + 1, 0),
            episode_success=np.where(done, float(s % 2 == 0), np.nan).astype(np.float32),
            episode_final_success=np.where(done, float(s % 4 == 0), np.nan).astype(np.float32),
        )


class LinearCritic(nn.Module):
    """``V(x) = x₀ + 2 x₁ + 1``: integer values, so every number below is exact in float32."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(OBS_DIM, 1)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[1.0, 2.0]]))
            self.linear.bias.fill_(1.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.linear(obs).squeeze(-1)


def V(x0: float, x1: float) -> float:
    return x0 + 2 * x1 + 1


def make_config(**extra):
    overrides = {
        "benchmark": None,
        "tasks": "gym:Pendulum-v1",
        "method": "ppo",
        "preset": "quick",
        "hidden": [8],
        "num_envs": N,
        "num_steps": T,
        "minibatch_size": N * T,
        "update_epochs": 1,
        "steps_per_task": 4 * N * T,  # four iterations per task
        "gamma": GAMMA,
        "norm_obs": False,  # raw observations reach the critic: V is the hand formula
        "lr_schedule": "linear",
        **extra,
    }
    return build_config(overrides)


def make_agent(cfg):
    torch.manual_seed(0)
    agent = build_agent(cfg, OBS_DIM, ACT_DIM)
    agent.critic = LinearCritic()
    agent.reset_optimizers()  # the critic's optimiser must hold the new critic
    return agent


def collect():
    """The scripted rollout of ``T`` steps."""
    cfg = make_config()
    env = ScriptedEnv()
    rollout = collect_rollout(make_agent(cfg), env, env.reset(), T, GAMMA)
    return rollout, env


def test_rewards_bootstrap_truncations_only_by_hand():
    rollout, _ = collect()
    expected = torch.tensor(
        [[n + 1 + 10.0 * s for n in range(N)] for s in range(T)], dtype=torch.float32
    )
    # Truncated, not terminated: + γ V(final_obs). Env 1 at step 1 (terminated) and env 2 at
    # step 2 (terminated and truncated) keep their reward.
    expected[1, 0] += GAMMA * V(10, 2)  # 2 + 7.5
    expected[3, 0] += GAMMA * V(10, 4)  # 31 + 9.5
    assert torch.equal(rollout.buffer.rewards, expected)


def test_buffer_holds_what_the_policy_saw_and_did():
    rollout, env = collect()
    buf = rollout.buffer
    assert buf.obs.shape == (T, N, OBS_DIM) and buf.actions.shape == (T, N, ACT_DIM)
    for field in (buf.log_probs, buf.rewards, buf.dones, buf.values):
        assert field.shape == (T, N) and field.dtype == torch.float32
    seen = torch.tensor([[[n, s] for n in range(N)] for s in range(T)], dtype=torch.float32)
    assert torch.equal(buf.obs, seen)  # the obs acted on at step s came from step s - 1
    assert torch.equal(buf.values, torch.tensor([[V(n, s) for n in range(N)] for s in range(T)]))
    assert torch.equal(buf.actions, torch.as_tensor(np.stack(env.actions)))
    # dones[s] = obs s starts an episode (ended at step s - 1); next_done for the obs after.
    ended = [[float((s, n) in TRUNCATED | TERMINATED) for n in range(N)] for s in range(T)]
    assert torch.equal(buf.dones, torch.tensor([[0.0] * N, *ended[:-1]]))
    assert torch.equal(rollout.next_done, torch.tensor(ended[-1]))
    np.testing.assert_array_equal(rollout.next_obs, [[n, T] for n in range(N)])


def test_finished_episode_statistics_in_step_then_env_order():
    rollout, _ = collect()
    # Episodes end at (1, 0), (1, 1), (2, 2), (3, 0).
    assert rollout.episode_success == [0.0, 0.0, 1.0, 0.0]
    assert rollout.episode_return == [100.0, 101.0, 202.0, 300.0]


def test_no_episode_end_means_no_statistics_and_no_bootstrap():
    cfg = make_config()
    env = ScriptedEnv()
    rollout = collect_rollout(make_agent(cfg), env, env.reset(), 1, GAMMA)  # step 0 only
    assert rollout.episode_success == [] and rollout.episode_return == []
    assert torch.equal(rollout.buffer.rewards, torch.tensor([[1.0, 2.0, 3.0]]))
    assert torch.equal(rollout.next_done, torch.zeros(N))


@pytest.mark.parametrize("iteration", [0, 2])
def test_train_iteration_sets_the_lr_after_the_rollout_and_reports(iteration):
    cfg = make_config()
    agent, env = make_agent(cfg), ScriptedEnv()
    before = {k: v.clone() for k, v in agent.actor.state_dict().items()}
    obs, stats = train_iteration(agent, env, env.reset(), cfg, iteration)
    # The linear schedule at the steps done once this rollout is in: (it + 1) / 4 of the task.
    progress = (iteration + 1) * cfg.steps_per_iteration / cfg.steps_per_task
    assert stats["lr"] == agent.learning_rate == cfg.lr + progress * (cfg.lr_final - cfg.lr)
    assert env.steps == T
    np.testing.assert_array_equal(obs, [[n, T] for n in range(N)])
    assert stats["episode/count"] == 4
    assert stats["episode/success"] == 0.25 and stats["episode/return"] == 175.75
    for key in ("sps", "learner_fraction", "pg_loss", "v_loss", "entropy", "approx_kl"):
        assert math.isfinite(stats[key]), key
    assert stats["sps"] > 0 and 0 <= stats["learner_fraction"] <= 1
    assert "explained_variance" in stats and "clip_frac" in stats
    after = agent.actor.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the update ran


def test_train_iteration_without_finished_episodes_reports_nan_means():
    cfg = make_config(num_steps=1, minibatch_size=N, steps_per_task=4 * N)
    agent, env = make_agent(cfg), ScriptedEnv()
    _, stats = train_iteration(agent, env, env.reset(), cfg, 0)
    assert stats["episode/count"] == 0
    assert math.isnan(stats["episode/success"]) and math.isnan(stats["episode/return"])
