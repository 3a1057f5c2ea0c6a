"""Small agents and rollouts shared by the intervention tests."""

import torch

from sphere_rl.algo.buffer import RolloutBuffer
from sphere_rl.config import build_config
from sphere_rl.methods import build_agent

OBS_DIM, ACT_DIM = 7, 3
# Every actor family: dense, dense with LayerNorm, the three MoE routings, MoE with LayerNorm.
ARCHS = ("mlp", "mlp_ln", "topk_moe", "dense_moe", "ds_moe", "topk_moe_ln")


def small_agent(arch: str, reg: str, **overrides):
    """A PPO agent with 2×16 hidden layers (3 experts for MoE actors) and the given plug-ins."""
    cfg = build_config(
        {"method": "ppo", "arch": arch, "reg": reg, "hidden": [16, 16], "n_experts": 3,
         "num_envs": 2, "num_steps": 32, "minibatch_size": 16, "update_epochs": 2,
         "steps_per_task": 64, **overrides}
    )  # fmt: skip
    return build_agent(cfg, OBS_DIM, ACT_DIM)


def random_rollout(agent, steps: int = 32, envs: int = 2, seed: int = 0):
    """``(buffer, advantages, returns)`` of random observations and actions for ``agent.update``."""
    gen = torch.Generator().manual_seed(seed)
    buffer = RolloutBuffer.empty(steps, envs, OBS_DIM, ACT_DIM, "cpu")
    buffer.obs.copy_(torch.randn(steps, envs, OBS_DIM, generator=gen))
    buffer.actions.copy_(torch.randn(steps, envs, ACT_DIM, generator=gen))
    with torch.no_grad():
        dist = agent.actor(buffer.obs.reshape(-1, OBS_DIM)).distribution()
        log_probs = dist.log_prob(buffer.actions.reshape(-1, ACT_DIM)).sum(-1)
    buffer.log_probs.copy_(log_probs.reshape(steps, envs))
    advantages = torch.randn(steps, envs, generator=gen)
    returns = torch.randn(steps, envs, generator=gen)
    return buffer, advantages, returns
