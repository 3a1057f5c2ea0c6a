"""Proximal Policy Optimization for continuous actions (Schulman et al. 2017).

CleanRL-style and deliberately plain: clipped surrogate, GAE, separate actor and critic optimisers,
per-network global gradient clipping, minibatch advantage normalisation, a linear, constant or
KL-adaptive learning rate (:class:`~sphere_rl.config.PPOConfig` defines them; this module applies
them all). Methods plug in through :mod:`sphere_rl.algo.hooks` only.

Host synchronisation: statistics stay tensors until the end of :meth:`PPOAgent.update` (one
transfer). Per minibatch, the NaN guard is one transfer, which also carries the approximate KL that
the per-minibatch KL rule needs; with no regularizer, or every regularizer in ``fixed`` or ``loss``
mode without PCGrad, it is the loop's only one (plug-ins' own code aside). A regularizer whose
gradient is combined apart (``grad`` mode, e.g. SPHERE's default, or PCGrad) adds several small
reads per minibatch, listed in :func:`~sphere_rl.regularizers.combine.combine_penalty_gradients`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from sphere_rl.algo.adam import Adam
from sphere_rl.algo.buffer import RolloutBuffer
from sphere_rl.algo.hooks import (
    ActorRegularizer,
    MinibatchObserver,
    TrainingCallback,
    penalty_terms,
)
from sphere_rl.algo.normalization import IdentityNormalizer, RunningMeanStd
from sphere_rl.config import ADAM_KERNELS, PPOConfig
from sphere_rl.interrupts import raise_if_requested
from sphere_rl.nn.policy import GaussianActor
from sphere_rl.regularizers.combine import backward_penalties, penalty_scale
from sphere_rl.runtime import LearnerThreads

KL_LR_BOUNDS = (1e-5, 1e-2)
KL_LR_FACTOR = 1.5

__all__ = ["KL_LR_BOUNDS", "KL_LR_FACTOR", "NonFiniteLossError", "PPOAgent", "PPOConfig"]


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or Inf; training must stop before the networks are corrupted."""


def schedule_progress(
    rule: str, iteration: int, iterations: int, steps_per_iteration: int, steps_per_task: int
) -> float:
    """The task progress the linear schedule reads in 0-based ``iteration`` of ``iterations``.

    ``after_rollout`` (the release, SB3's order): steps done once this iteration's rollout is in,
    over the task's budget, so the first iteration of a 1M-step task with 16,384-step rollouts runs
    at 2.967e-4, not 3e-4. ``before_rollout``: ``iteration / iterations``.
    """
    if rule == "after_rollout":
        return (iteration + 1) * steps_per_iteration / steps_per_task
    return iteration / iterations


def adapted_learning_rate(lr: float, kl: float, target_kl: float) -> float:
    """The release's KL rule: ÷1.5 above ``2·target_kl``, ×1.5 below ``target_kl/2``, clipped."""
    if kl > 2.0 * target_kl:
        lr /= KL_LR_FACTOR
    elif kl < 0.5 * target_kl:
        lr *= KL_LR_FACTOR
    return float(np.clip(lr, *KL_LR_BOUNDS))


def normalize_advantages(adv: Tensor, ddof: int = 0) -> Tensor:
    """``(adv − mean) / (std + 1e-8)`` of one ``(T,)`` minibatch; ``ddof=0`` is the release's
    population std (jnp ``std``), ``ddof=1`` the sample std."""
    return (adv - adv.mean()) / (adv.std(correction=ddof) + 1e-8)


def make_adam(module: nn.Module, lr: float, kernel: str = "fused") -> Adam:
    """Adam with ε = 1e-5 (the release's) and multi-tensor kernels.

    ``"fused"`` (the default) is one in-place kernel per step: no temporaries, 1.3–1.5× faster
    than ``"foreach"`` on the paper's update (``docs/benchmarks.md``), and equal to PyTorch's
    per-parameter loop up to float32 rounding (``tests/algo/test_release_rules.py``).
    ``"foreach"`` computes bitwise the loop's numbers in fewer kernel launches. Either is bitwise
    ``torch.optim.Adam`` with that kernel, without importing ``torch._dynamo``
    (:mod:`sphere_rl.algo.adam`).
    """
    if kernel not in ADAM_KERNELS:
        raise ValueError(f"adam_kernel must be one of {ADAM_KERNELS}, got {kernel!r}")
    return Adam(module.parameters(), lr, eps=1e-5, kernel=kernel)


class PPOAgent:
    """Actor, critic, their optimisers, the observation normaliser and the method's hooks.

    Args:
        actor: any :class:`~sphere_rl.nn.GaussianActor`.
        critic: a module mapping ``(N, obs_dim)`` to ``(N,)`` values.
        config: PPO hyper-parameters and learning-rate schedule (an
            :class:`~sphere_rl.config.ExperimentConfig` is one).
        normalizer: observation normaliser (``None``: no normalisation).
        regularizers: actor penalties (SPHERE, Parseval, ...).
        callbacks: interventions acting on the networks (CBP, ReDo, ...).
        device: torch device for the networks.
        observers: what sees each minibatch's forward pass before the update (CBP, ReDo); they
            add nothing to the loss.

    Attributes:
        sample_policy_loss: ``(T,)`` per-sample clipped-surrogate losses of the minibatch being
            penalised (with their graph), for regularizers that differentiate them (SPHERE's
            gradient-factor variant); ``None`` outside an actor step.
        learner_threads: how many intra-op threads each minibatch update uses
            (:class:`~sphere_rl.runtime.LearnerThreads`; one unless the run allows more).
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
        observers: Sequence[MinibatchObserver] = (),
    ) -> None:
        apart = [r.name for r in regularizers if r.mode == "grad" or r.pcgrad]
        if len(apart) > 1:
            raise ValueError(f"at most one regularizer may use mode='grad' or PCGrad, got {apart}")
        self.actor = actor.to(device)
        self.critic = critic.to(device)
        self.config = config
        self.device = device
        self.normalizer = normalizer or IdentityNormalizer((actor.obs_dim,))
        self.regularizers = list(regularizers)
        self.callbacks = list(callbacks)
        self.observers = list(observers)
        self.sample_policy_loss: Tensor | None = None
        self.learner_threads = LearnerThreads(1)
        self.reset_optimizers()

    def reset_optimizers(self) -> None:
        """Fresh Adam states at the base learning rate."""
        kernel = self.config.adam_kernel
        self.actor_optimizer = make_adam(self.actor, self.config.lr, kernel)
        self.critic_optimizer = make_adam(self.critic, self.config.lr, kernel)

    def start_task(self, reset_optimizer: bool = False) -> None:
        """A CRL task boundary: restart the learning-rate schedule (every schedule restarts per
        task, as in the release) and, if asked, reset the Adam moments (the release carries them).
        """
        if reset_optimizer:
            self.reset_optimizers()
        self.set_learning_rate(self.config.lr)

    def schedule_learning_rate(self, progress: float) -> None:
        """Set the rate for an iteration at ``progress ∈ (0, 1]`` of the task (clipped to 1).

        ``linear`` interpolates ``lr → lr_final``, ``constant`` holds ``lr``; ``kl_adaptive`` is left
        alone (it adapts inside :meth:`update` and no linear decay applies).
        """
        cfg = self.config
        if cfg.lr_schedule == "linear":
            self.set_learning_rate(cfg.lr + min(progress, 1.0) * (cfg.lr_final - cfg.lr))
        elif cfg.lr_schedule == "constant":
            self.set_learning_rate(cfg.lr)

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
        """``(output, per-sample surrogate losses (T,), loss, stats)`` of one minibatch."""
        cfg = self.config
        output = self.actor(obs)
        dist = output.distribution()
        log_ratio = dist.log_prob(actions).sum(-1) - old_log_probs
        ratio = log_ratio.exp()
        clipped = ratio.clamp(1.0 - cfg.clip_coef, 1.0 + cfg.clip_coef)
        sample_loss = torch.max(-adv * ratio, -adv * clipped)
        pg_loss = sample_loss.mean()
        entropy = dist.entropy().sum(-1).mean()
        with torch.no_grad():
            approx_kl = ((ratio - 1.0) - log_ratio).mean()
            clip_frac = ((ratio - 1.0).abs() > cfg.clip_coef).float().mean()
        stats = {"pg_loss": pg_loss.detach(), "entropy": entropy.detach()}
        stats.update(approx_kl=approx_kl, clip_frac=clip_frac)
        return output, sample_loss, pg_loss - cfg.ent_coef * entropy, stats

    def _penalised_actor_loss(self, obs, actions, old_log_probs, adv):
        """Policy loss with every penalty folded in, but those of the regularizer whose gradient
        is combined apart (grad mode or PCGrad). The observers see the forward pass first.

        Returns ``(loss, that regularizer or None, its (name, penalty, coef, constant scale or
        None) terms, stats)``; ``coef`` and scale as in :mod:`sphere_rl.regularizers.combine`.
        """
        output, sample_loss, base_loss, stats = self._actor_loss(obs, actions, old_log_probs, adv)
        for observer in self.observers:
            observer.observe_minibatch(output, obs, self)
        # Loss-mode coefficients scale against the policy objective alone, not against
        # penalties added before them.
        policy_loss = base_loss
        apart_reg, apart_terms = None, []
        self.sample_policy_loss = sample_loss
        try:
            for reg in self.regularizers:
                apart = reg.mode == "grad" or reg.pcgrad
                for name, penalty, coef in penalty_terms(reg, output, obs, self):
                    stats[f"reg/{name}"] = penalty.detach()
                    scale = None
                    if reg.mode != "grad":
                        scale = penalty_scale(reg.mode, coef, policy_loss, penalty)
                        stats[f"reg/{name}_scale"] = scale
                    if apart:
                        apart_reg = reg
                        apart_terms.append((name, penalty, coef, scale))
                    else:
                        base_loss = base_loss + scale * penalty
        finally:
            self.sample_policy_loss = None
        return base_loss, apart_reg, apart_terms, stats

    def _minibatch_step(self, obs, actions, old_log_probs, adv, returns):
        """One actor and one critic optimiser step.

        Returns ``(stats, kl)``: the minibatch's statistics as tensors, and its approximate KL
        (measured before the update) as a float.
        """
        actor_loss, apart_reg, apart_terms, stats = self._penalised_actor_loss(
            obs, actions, old_log_probs, adv
        )
        v_loss = (self.critic(obs) - returns).square().mean()
        # The guard runs before either optimiser steps (the networks are independent, so computing
        # both losses first changes nothing else), in one host transfer with the KL.
        reg_keys = [k for k in stats if k.startswith("reg/")]
        kl = self._check_finite(actor_loss, [stats[k] for k in reg_keys], v_loss, stats)

        self.actor_optimizer.zero_grad(set_to_none=True)
        params = list(self.actor.parameters())
        if apart_reg is None:
            actor_loss.backward()
        else:
            combined = backward_penalties(
                [p for p in params if p.requires_grad],
                actor_loss,
                [(penalty, coef, scale) for _, penalty, coef, scale in apart_terms],
                apart_reg.pcgrad,
            )
            for (name, *_), term_stats in zip(apart_terms, combined, strict=True):
                stats[f"reg/{name}_scale"] = torch.as_tensor(term_stats["scale"])
                stats[f"reg/{name}_cos"] = torch.as_tensor(term_stats["cos"])
        stats["actor_grad_norm"] = nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)
        self.actor_optimizer.step()

        self.critic_optimizer.zero_grad(set_to_none=True)
        (self.config.vf_coef * v_loss).backward()
        stats["critic_grad_norm"] = nn.utils.clip_grad_norm_(
            self.critic.parameters(), self.config.max_grad_norm
        )
        self.critic_optimizer.step()
        stats["v_loss"] = v_loss.detach()
        return stats, kl

    @staticmethod
    def _check_finite(actor_loss, reg_values, v_loss, stats) -> float:
        """Raise :class:`NonFiniteLossError` on a NaN/Inf loss; returns ``stats["approx_kl"]``,
        read back in the same transfer."""
        checked = [actor_loss, *reg_values, v_loss, stats["approx_kl"]]
        values = torch.stack([v.detach() for v in checked]).tolist()
        *losses, kl = values
        actor_values, critic_value = losses[:-1], losses[-1]
        for what, value in [*(("actor", v) for v in actor_values), ("critic", critic_value)]:
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"the {what} loss became non-finite ({value}); stopping before the networks"
                    " are corrupted. The last checkpoint is intact; try a lower learning rate or a"
                    " smaller regularizer coefficient."
                )
        return kl

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
        kl_rule = cfg.kl_adapt_every if cfg.lr_schedule == "kl_adaptive" else None
        keys: list[str] | None = None
        rows: list[Tensor] = []
        self.actor.train()
        for _ in range(cfg.update_epochs):
            epoch_kls: list[float] = []
            for idx in torch.randperm(batch, device=self.device).split(cfg.minibatch_size):
                mb_adv = adv[idx]
                if cfg.norm_adv and len(idx) > 1:
                    mb_adv = normalize_advantages(mb_adv, cfg.adv_std_ddof)
                raise_if_requested()
                with self.learner_threads.minibatch():
                    stats, kl = self._minibatch_step(
                        obs[idx], actions[idx], old_log_probs[idx], mb_adv, ret[idx]
                    )
                for cb in self.callbacks:
                    cb.after_optimizer_step(self)
                if kl_rule == "minibatch":  # the release: the KL measured before this update
                    self._adapt_learning_rate(kl)
                epoch_kls.append(kl)
                keys = keys or list(stats)
                rows.append(
                    torch.stack([torch.as_tensor(stats[k], device=obs.device) for k in keys])
                )
            if kl_rule == "epoch":
                self._adapt_learning_rate(sum(epoch_kls) / len(epoch_kls))
        var_ret = ret.var()
        explained = torch.where(var_ret > 0, 1 - (ret - values).var() / var_ret, 0.0)
        means = torch.stack(rows).double().mean(0)
        # The update's one statistics transfer.
        *means, explained = torch.cat([means, explained.double().reshape(1)]).tolist()
        result = dict(zip(keys or [], means, strict=True))
        result["explained_variance"] = explained
        result["lr"] = self.learning_rate
        return result

    def _adapt_learning_rate(self, kl: float) -> None:
        """Shrink the step when the policy moved too far, grow it when it barely moved."""
        self.set_learning_rate(adapted_learning_rate(self.learning_rate, kl, self.config.target_kl))

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
