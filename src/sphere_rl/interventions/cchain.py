"""C-CHAIN: continual churn approximated reduction (Tang, Obando-Ceron, Castro, Courville &
Berseth, ICML 2025).

*Churn* is how much one update changes the policy on states it was not trained on. C-CHAIN adds to
the policy loss the churn on a reference batch,

    L_churn = mean_{x ∈ B_ref} ‖μ_θ(x) − μ_θ⁻(x)‖²,

where ``μ`` is the action mean and ``θ⁻`` the parameters one update ago, with an adaptive scale
``λ = c · mean|L_policy| / mean(L_churn)`` that keeps the churn term at a fixed fraction ``c`` of
the policy loss (the authors' PPO code averages both over the last 100 iterations).

Here the reference batch is the previous minibatch, a different random subset of the rollout (of
the previous rollout, for the first minibatch of an iteration). Its action means were computed by
that minibatch's own forward pass, with the parameters one update ago, so ``μ_θ⁻`` costs nothing:
the only extra work is one forward pass on the reference batch.

The scale uses PPO's ``loss`` mode, ``λ = c · |L_policy| / L_reg`` per minibatch. The penalty handed
to PPO has the gradient of the current churn but, as its value, the churn averaged over the last
``window`` iterations, so that ``λ`` divides by a running mean as in the paper; ``|L_policy|`` is
the current minibatch's (the hooks do not expose the policy loss's history). Everything restarts at
each task, as in the authors' code; their warm-up with ``λ = 100`` for the first 50 iterations of a
task is replaced by averaging over the iterations seen so far.

Mixture-of-Experts actors: the churn is measured on the mixed action mean, so the gradient reaches
every selected expert and the gate.
"""

from __future__ import annotations

import math
from collections import deque

import torch
from torch import Tensor

from sphere_rl.algo.hooks import TrainingCallback
from sphere_rl.config import ExperimentConfig
from sphere_rl.nn.policy import PolicyOutput


def churn(current: Tensor, reference: Tensor) -> Tensor:
    """Mean squared change ``mean ‖current − reference‖²`` of ``(N, A)`` outputs (per entry)."""
    return (current - reference).square().mean()


def with_value(tensor: Tensor, value: Tensor) -> Tensor:
    """A scalar equal to ``value`` whose gradient is the gradient of ``tensor``."""
    return tensor + (value - tensor).detach()


class CChain(TrainingCallback):
    """C-CHAIN as a PPO actor penalty (``loss`` mode); a callback for its per-task reset and its
    checkpointed state.

    Args:
        target: ``c``, the churn term's target fraction of the policy loss.
        window: iterations in the running mean of the churn.
        updates_per_iteration: PPO minibatch updates per iteration (epochs × minibatches).
    """

    name = "cchain"
    mode = "loss"
    pcgrad = False

    def __init__(self, target: float = 0.05, window: int = 100, updates_per_iteration: int = 1):
        self.coef = target
        self.window = window
        self.updates_per_iteration = updates_per_iteration
        self._reset()

    @classmethod
    def from_config(cls, cfg: ExperimentConfig) -> CChain:
        epochs, batch = cfg.update_epochs, cfg.num_envs * cfg.num_steps
        return cls(
            target=cfg.cchain_target,
            window=cfg.cchain_window,
            updates_per_iteration=epochs * math.ceil(batch / cfg.minibatch_size),
        )

    def on_task_start(self, agent, task_index: int) -> None:
        self._reset()

    def _reset(self) -> None:
        self.reference: tuple[Tensor, Tensor] | None = None  # (obs, action means one update ago)
        self.history: deque[float] = deque(maxlen=self.window)  # per-iteration mean churn
        self.updates, self.churn_sum, self.churn_count = 0, 0.0, 0  # the current iteration

    def penalty(self, output: PolicyOutput, obs: Tensor, agent) -> Tensor:
        reference, self.reference = self.reference, (obs.detach(), output.mean.detach())
        if reference is None:  # the first minibatch of a task
            self._record(None)
            return torch.zeros((), device=obs.device)
        ref_obs, ref_mean = reference
        current = churn(agent.actor(ref_obs).mean, ref_mean)
        smoothed = self._record(float(current.detach()))
        return with_value(current, current.new_tensor(smoothed))

    def _record(self, value: float | None) -> float | None:
        """Count one update and its churn (if any); return the mean churn over the last
        ``window`` iterations (the current iteration's until one is complete)."""
        self.updates += 1
        if value is not None:
            self.churn_sum += value
            self.churn_count += 1
        current = self.churn_sum / self.churn_count if self.churn_count else None
        if self.updates == self.updates_per_iteration:
            if current is not None:
                self.history.append(current)
            self.updates, self.churn_sum, self.churn_count = 0, 0.0, 0
        return sum(self.history) / len(self.history) if self.history else current

    def state_dict(self) -> dict:
        return {
            "reference": self.reference,
            "history": list(self.history),
            "iteration": (self.updates, self.churn_sum, self.churn_count),
        }

    def load_state_dict(self, state: dict) -> None:
        self.reference = state["reference"]
        self.history = deque(state["history"], maxlen=self.window)
        self.updates, self.churn_sum, self.churn_count = state["iteration"]
