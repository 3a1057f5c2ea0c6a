"""Shrink & Perturb (Ash & Adams, NeurIPS 2020).

Weights are shrunk towards zero and perturbed with noise at the scale of their initialisation:

    W ← λ W + σ · ε · std_init(W),   b ← λ b,   ε ~ N(0, 1)

Ash & Adams apply it once when new data arrive (here: ``period = 0``, at each task boundary). The
default follows the S&P baseline of Chung et al. (NeurIPS 2024) on MetaWorld with PPO, the setting
closest to ours: after every update, a decoupled weight decay of 10⁻³ at learning rate 3·10⁻⁴
(``λ = 1 − 3·10⁻⁷``) and noise ``σ = 10⁻³`` relative to a fresh initialisation.

Every linear layer is shrunk and perturbed, output layers included: all experts, the expert output
layer, the gating network and the critic (by default). LayerNorm and diagonal scales and the
policy's log-std are left alone: shrinking a normaliser's gain towards zero, or the exploration
noise, is not what the method is about.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sphere_rl.algo.hooks import TrainingCallback
from sphere_rl.config import ExperimentConfig
from sphere_rl.interventions.units import WeightMatrix, agent_towers, weight_matrices


@torch.no_grad()
def shrink_perturb_(weight: Tensor, bias: Tensor, shrink: float, noise_std: float) -> None:
    """``W ← shrink · W + noise_std · ε``, ``b ← shrink · b`` in place (``ε`` standard normal)."""
    weight.mul_(shrink).add_(torch.randn_like(weight), alpha=noise_std)
    bias.mul_(shrink)


class ShrinkPerturb(TrainingCallback):
    """Shrink & Perturb as a PPO training callback.

    Args:
        shrink: ``λ``.
        perturb: ``σ``, noise in units of each matrix's initialisation standard deviation.
        period: updates between applications; 0 applies it once at the start of every task after
            the first.
        critic: also act on the critic.
    """

    name = "snp"

    def __init__(
        self, shrink: float = 0.9999997, perturb: float = 1e-3, period: int = 1, critic: bool = True
    ) -> None:
        self.shrink = shrink
        self.perturb = perturb
        self.period = period
        self.critic = critic
        self.matrices: list[WeightMatrix] = []
        self.updates = 0

    @classmethod
    def from_config(cls, cfg: ExperimentConfig) -> ShrinkPerturb:
        return cls(
            shrink=cfg.sp_shrink,
            perturb=cfg.sp_perturb,
            period=cfg.sp_period,
            critic=cfg.intervene_on_critic,
        )

    def attach(self, agent) -> None:
        self.matrices = [m for t in agent_towers(agent, self.critic) for m in weight_matrices(t)]

    def apply(self) -> None:
        for matrix in self.matrices:
            # The noise is i.i.d., so the stored layout will do (cheaper than the unit-major view).
            noise_std = self.perturb * matrix.init_std
            shrink_perturb_(matrix.weight.param, matrix.bias.param, self.shrink, noise_std)

    def on_task_start(self, agent, task_index: int) -> None:
        # Only a network that has trained is warm-started (the RL protocol builds a fresh one).
        if self.period == 0 and task_index > 0 and self.updates > 0:
            self.apply()

    def after_optimizer_step(self, agent) -> None:
        self.updates += 1
        if self.period > 0 and self.updates % self.period == 0:
            self.apply()

    def state_dict(self) -> dict:
        return {"updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.updates = state["updates"]
