"""PPO pieces against independent oracles, and PPO learning a standard control task."""

import numpy as np
import pytest
import torch

from sphere_rl.algo.buffer import compute_gae
from sphere_rl.algo.normalization import RunningMeanStd
from sphere_rl.analysis import load_run
from sphere_rl.config import build_config
from sphere_rl.continual.runner import ContinualRunner
from sphere_rl.envs import make_vector_env
from sphere_rl.methods import build_agent


def gae_oracle(rewards, values, dones, next_value, next_done, gamma, lam):
    """A_t = Σ_k (γλ)^k δ_{t+k}, summed explicitly and stopped at the first episode boundary."""
    steps, envs = rewards.shape
    values_ext = np.vstack([values, next_value[None]])
    dones_ext = np.vstack([dones, next_done[None]])  # dones_ext[t] = obs t starts a new episode
    adv = np.zeros((steps, envs))
    for n in range(envs):
        for t in range(steps):
            total, weight = 0.0, 1.0
            for k in range(t, steps):
                cont = 1.0 - dones_ext[k + 1, n]
                delta = rewards[k, n] + gamma * values_ext[k + 1, n] * cont - values_ext[k, n]
                total += weight * delta
                if cont == 0.0:
                    break
                weight *= gamma * lam
            adv[t, n] = total
    return adv


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gae_matches_explicit_sum(seed):
    rng = np.random.default_rng(seed)
    steps, envs = 12, 3
    rewards = rng.normal(size=(steps, envs))
    values = rng.normal(size=(steps, envs))
    dones = (rng.random((steps, envs)) < 0.2).astype(float)
    next_value, next_done = rng.normal(size=envs), (rng.random(envs) < 0.3).astype(float)
    t = lambda x: torch.as_tensor(x, dtype=torch.float64)  # noqa: E731
    adv, ret = compute_gae(t(rewards), t(values), t(dones), t(next_value), t(next_done), 0.97, 0.9)
    expected = gae_oracle(rewards, values, dones, next_value, next_done, 0.97, 0.9)
    np.testing.assert_allclose(adv.numpy(), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ret.numpy(), expected + values, rtol=1e-12, atol=1e-12)


def test_running_mean_std_matches_numpy_on_the_concatenation():
    rng = np.random.default_rng(0)
    chunks = [rng.normal(3.0, 2.0, size=(n, 4)) for n in (1, 7, 50, 3)]
    rms = RunningMeanStd((4,), epsilon=1e-12)
    for chunk in chunks:
        rms.update(chunk)
    data = np.concatenate(chunks)
    np.testing.assert_allclose(rms.mean, data.mean(0), rtol=1e-9)
    np.testing.assert_allclose(rms.var, data.var(0), rtol=1e-9)
    restored = RunningMeanStd((4,), epsilon=1e-12)
    restored.load_state_dict(rms.state_dict())
    np.testing.assert_array_equal(restored.normalize(data), rms.normalize(data))
    assert np.abs(rms.normalize(data * 100)).max() <= rms.clip


def test_kl_adaptive_learning_rate_moves_by_the_factor_within_bounds():
    cfg = build_config({"method": "ppo", "lr_schedule": "kl_adaptive", "target_kl": 0.01})
    agent = build_agent(cfg, 4, 2)
    agent._adapt_learning_rate(0.05)  # too far: shrink
    assert agent.learning_rate == pytest.approx(3e-4 / 1.5)
    agent._adapt_learning_rate(0.001)  # barely moved: grow
    assert agent.learning_rate == pytest.approx(3e-4)
    agent._adapt_learning_rate(0.01)  # on target: keep
    assert agent.learning_rate == pytest.approx(3e-4)
    for _ in range(100):
        agent._adapt_learning_rate(1.0)
    assert agent.learning_rate == pytest.approx(1e-5)
    assert agent.critic_optimizer.param_groups[0]["lr"] == agent.learning_rate


class ConstantPenalty:
    """A regularizer whose penalty is ``value · mean(output.mean²)``: known value, has a gradient."""

    pcgrad = False

    def __init__(self, name: str, mode: str, coef: float, value: float) -> None:
        self.name, self.mode, self.coef, self.value = name, mode, coef, value

    def penalty(self, output, obs, agent):
        return self.value * (1.0 + 0.0 * output.mean.square().mean())


@pytest.mark.parametrize("order", ["fixed_first", "loss_first"])
def test_loss_mode_coefficient_refers_to_the_policy_loss_alone(order):
    torch.manual_seed(0)
    cfg = build_config({"method": "topk_moe", "hidden": [8], "n_experts": 3})
    agent = build_agent(cfg, 5, 2)
    big = ConstantPenalty("big", "fixed", 1.0, 1000.0)  # would dominate a running total
    ratio = ConstantPenalty("ratio", "loss", 0.1, 4.0)
    agent.regularizers = [big, ratio] if order == "fixed_first" else [ratio, big]
    obs, actions = torch.randn(16, 5), torch.randn(16, 2)
    log_probs, adv = torch.zeros(16), torch.randn(16)
    _, _, policy_loss, _ = agent._actor_loss(obs, actions, log_probs, adv)
    stats, _ = agent._minibatch_step(obs, actions, log_probs, adv, torch.randn(16))
    expected = 0.1 * policy_loss.detach().abs() / 4.0
    assert float(stats["reg/ratio_scale"]) == pytest.approx(float(expected), rel=1e-5)


def random_policy_return(task: str, episodes: int = 5) -> float:
    env = make_vector_env(task, num_envs=episodes, seed=123)
    rng = np.random.default_rng(0)
    env.reset(seed=123)
    returns = np.full(episodes, np.nan)
    while np.isnan(returns).any():
        step = env.step(rng.uniform(-1, 1, size=(episodes, env.act_dim)).astype(np.float32))
        first = step.done & np.isnan(returns)
        returns[first] = step.episode_return[first]
    env.close()
    return float(returns.mean())


def train_inverted_pendulum(tmp_path, steps: int) -> list[float]:
    cfg = build_config(
        {
            "benchmark": None,
            "tasks": "gym:InvertedPendulum-v5",
            "method": "ppo",
            "preset": "quick",
            "hidden": [64, 64],
            "num_envs": 4,
            "num_steps": 256,
            "minibatch_size": 64,
            "update_epochs": 10,
            "lr_schedule": "constant",
            "steps_per_task": steps,
            "eval_interval": 4096,
            "eval_episodes": 5,
            "diag_interval": 10**9,
            "diag_entk": False,
            "checkpoint_interval": 10**9,
        }
    )
    ContinualRunner.open(cfg, tmp_path / "run", show_progress=False).run()
    return [r["return"] for r in load_run(tmp_path / "run").evals]


def test_ppo_improves_quickly_on_inverted_pendulum(tmp_path):
    baseline = random_policy_return("gym:InvertedPendulum-v5")
    returns = train_inverted_pendulum(tmp_path, 4096)
    # Random actions keep the pole up for ~5-10 steps; 4k steps of PPO already do much better.
    assert returns[-1] > 3 * baseline, (returns, baseline)


@pytest.mark.slow
def test_ppo_solves_inverted_pendulum(tmp_path):
    baseline = random_policy_return("gym:InvertedPendulum-v5")
    returns = train_inverted_pendulum(tmp_path, 20480)
    assert returns[-1] >= 500 > 20 * baseline, (returns, baseline)
