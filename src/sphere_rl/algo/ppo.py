"""Proximal Policy Optimization for continuous actions (Schulman et al. 2017).

CleanRL-style and deliberately plain: clipped surrogate, GAE, separate actor and critic optimisers,
per-network global gradient clipping, minibatch advantage normalisation, a linear or KL-adaptive
learning rate. Methods plug in through :mod:`sphere_rl.algo.hooks` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from sphere_rl.algo.buffer import RolloutBuffer
from sphere_rl.algo.hooks import ActorRegularizer, TrainingCallback
from sphere_rl.algo.normalization import IdentityNormalizer, RunningMeanStd
from sphere_rl.nn.policy import GaussianActor
from sphere_rl.regularizers.combine import apply_regularized_gradients

KL_LR_BOUNDS = (1e-5, 1e-2)
KL_LR_FACTOR = 1.5


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or Inf; training must stop before the networks are corrupted."""


@dataclass(frozen=True)
class PPOConfig:
    lr: float = 3e-4
    lr_final: float = 1e-4
    lr_schedule: str = "linear"  # "linear" | "constant" | "kl_adaptive"
    target_kl: float = 0.03  # used by "kl_adaptive"
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    update_epochs: int = 10
    minibatch_size: int = 256
    norm_adv: bool = True


class PPOAgent:
    """Actor, critic, their optimisers, the observation normaliser and the method's hooks.

    Args:
        actor: any :class:`~sphere_rl.nn.GaussianActor`.
        critic: a module mapping ``(N, obs_dim)`` to ``(N,)`` values.
        config: PPO hyper-parameters.
        normalizer: observation normaliser (``None``: no normalisation).
        regularizers: actor penalties (SPHERE, Parseval, ...).
        callbacks: interventions acting on the networks (CBP, ReDo, ...).
        device: torch device for the networks.
    """

    def __init__(
        self,
        actor: GaussianActor,
        critic: nn.Module,
        config: PPOConfig,
        normalizer: RunningMeanStd | None = None,
        regularizers: Sequence[ActorRegularizer] = (),
        callbacks: Sequence[TrainingCallback] = (),
        device: str = "cpu",
    ) -> None:
        grad_mode = [r.name for r in regularizers if r.mode == "grad"]
        if len(grad_mode) > 1:
            raise ValueError(f"at most one regularizer may use mode='grad', got {grad_mode}")
        self.actor = actor.to(device)
        self.critic = critic.to(device)
        self.config = config
        self.device = device
        self.normalizer = normalizer or IdentityNormalizer((actor.obs_dim,))
        self.regularizers = list(regularizers)
        self.callbacks = list(callbacks)
        self.reset_optimizers()

    def reset_optimizers(self) -> None:
        """Fresh Adam states at the base learning rate (the CRL default at each task start)."""
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), self.config.lr, eps=1e-5)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), self.config.lr, eps=1e-5)

    @property
    def learning_rate(self) -> float:
        return self.actor_optimizer.param_groups[0]["lr"]

    def set_learning_rate(self, lr: float) -> None:
        for opt in (self.actor_optimizer, self.critic_optimizer):
            for group in opt.param_groups:
                group["lr"] = lr

    def obs_tensor(self, raw_obs: np.ndarray) -> Tensor:
        return torch.as_tensor(self.normalizer.normalize(raw_obs), device=self.device)

    @torch.no_grad()
    def act(self, obs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Sample actions for normalised ``(N, obs_dim)`` observations: ``(actions, log_probs,
        values)``."""
        dist = self.actor(obs).distribution()
        actions = dist.sample()
        return actions, dist.log_prob(actions).sum(-1), self.critic(obs)

    @torch.no_grad()
    def value(self, obs: Tensor) -> Tensor:
        return self.critic(obs)

    def _actor_loss(self, obs: Tensor, actions: Tensor, old_log_probs: Tensor, adv: Tensor):
        cfg = self.config
        output = self.actor(obs)
        dist = output.distribution()
        log_ratio = dist.log_prob(actions).sum(-1) - old_log_probs
        ratio = log_ratio.exp()
        clipped = ratio.clamp(1.0 - cfg.clip_coef, 1.0 + cfg.clip_coef)
        pg_loss = torch.max(-adv * ratio, -adv * clipped).mean()
        entropy = dist.entropy().sum(-1).mean()
        with torch.no_grad():
            approx_kl = ((ratio - 1.0) - log_ratio).mean()
            clip_frac = ((ratio - 1.0).abs() > cfg.clip_coef).float().mean()
        stats = {"pg_loss": pg_loss.detach(), "entropy": entropy.detach()}
        stats.update(approx_kl=approx_kl, clip_frac=clip_frac)
        return output, pg_loss - cfg.ent_coef * entropy, stats

    def _actor_step(self, obs, actions, old_log_probs, adv) -> dict[str, Tensor | float]:
        output, base_loss, stats = self._actor_loss(obs, actions, old_log_probs, adv)
        # Loss-mode coefficients scale against the policy objective alone, not against
        # penalties added before them.
        policy_scale = base_loss.detach().abs()
        grad_reg, grad_penalty = None, None
        for reg in self.regularizers:
            penalty = reg.penalty(output, obs, self)
            stats[f"reg/{reg.name}"] = penalty.detach()
            if reg.mode == "grad":
                grad_reg, grad_penalty = reg, penalty
            else:
                coef = reg.coef
                if reg.mode == "loss":
                    coef = reg.coef * policy_scale / (penalty.detach() + 1e-8)
                stats[f"reg/{reg.name}_coef"] = torch.as_tensor(coef)
                base_loss = base_loss + coef * penalty
        _check_finite("actor", base_loss, *(v for k, v in stats.items() if k.startswith("reg/")))
        self.actor_optimizer.zero_grad(set_to_none=True)
        params = list(self.actor.parameters())
        if grad_reg is None:
            base_loss.backward()
        else:
            combined = apply_regularized_gradients(
                params, base_loss, grad_penalty, "grad", grad_reg.coef, grad_reg.pcgrad
            )
            stats[f"reg/{grad_reg.name}_coef"] = torch.as_tensor(combined["coef"])
            stats[f"reg/{grad_reg.name}_cos"] = torch.as_tensor(combined["cos"])
        stats["actor_grad_norm"] = nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)
        self.actor_optimizer.step()
        return stats

    def _critic_step(self, obs: Tensor, returns: Tensor) -> dict[str, Tensor]:
        v_loss = 0.5 * (self.critic(obs) - returns).square().mean()
        _check_finite("critic", v_loss)
        self.critic_optimizer.zero_grad(set_to_none=True)
        (self.config.vf_coef * v_loss).backward()
        grad_norm = nn.utils.clip_grad_norm_(self.critic.parameters(), self.config.max_grad_norm)
        self.critic_optimizer.step()
        return {"v_loss": v_loss.detach(), "critic_grad_norm": grad_norm}

    def update(
        self, buffer: RolloutBuffer, advantages: Tensor, returns: Tensor
    ) -> dict[str, float]:
        """Run ``update_epochs`` passes of minibatch PPO over one rollout; returns mean stats."""
        cfg = self.config
        obs = buffer.obs.reshape(-1, buffer.obs.shape[-1])
        actions = buffer.actions.reshape(-1, buffer.actions.shape[-1])
        old_log_probs, adv = buffer.log_probs.reshape(-1), advantages.reshape(-1)
        ret, values = returns.reshape(-1), buffer.values.reshape(-1)
        batch = obs.shape[0]
        sums: dict[str, float] = {}
        count = 0
        self.actor.train()
        for _ in range(cfg.update_epochs):
            epoch_kl, epoch_batches = 0.0, 0
            for idx in torch.randperm(batch, device=self.device).split(cfg.minibatch_size):
                mb_adv = adv[idx]
                if cfg.norm_adv and len(idx) > 1:
                    mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                stats = self._actor_step(obs[idx], actions[idx], old_log_probs[idx], mb_adv)
                stats.update(self._critic_step(obs[idx], ret[idx]))
                for cb in self.callbacks:
                    cb.after_optimizer_step(self)
                for key, value in stats.items():
                    sums[key] = sums.get(key, 0.0) + float(value)
                count += 1
                epoch_kl += float(stats["approx_kl"])
                epoch_batches += 1
            if cfg.lr_schedule == "kl_adaptive":
                self._adapt_learning_rate(epoch_kl / epoch_batches)
        result = {key: total / count for key, total in sums.items()}
        var_ret = ret.var()
        result["explained_variance"] = (
            float(1 - (ret - values).var() / var_ret) if var_ret > 0 else 0.0
        )
        result["lr"] = self.learning_rate
        return result

    def _adapt_learning_rate(self, kl: float) -> None:
        """Shrink the step when the policy moved too far, grow it when it barely moved."""
        lr = self.learning_rate
        if kl > 2.0 * self.config.target_kl:
            lr /= KL_LR_FACTOR
        elif kl < 0.5 * self.config.target_kl:
            lr *= KL_LR_FACTOR
        self.set_learning_rate(float(np.clip(lr, *KL_LR_BOUNDS)))

    def state_dict(self) -> dict:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "normalizer": self.normalizer.state_dict(),
            "callbacks": [cb.state_dict() for cb in self.callbacks],
        }

    def load_state_dict(self, state: dict) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.normalizer.load_state_dict(state["normalizer"])
        for cb, cb_state in zip(self.callbacks, state["callbacks"], strict=True):
            cb.load_state_dict(cb_state)


def _check_finite(what: str, *values: Tensor) -> None:
    for value in values:
        if not torch.isfinite(value).all():
            raise NonFiniteLossError(
                f"the {what} loss became non-finite ({float(value.detach())}); stopping before"
                " the networks are corrupted. The last checkpoint is intact; try a lower learning"
                " rate or a smaller regularizer coefficient."
            )
