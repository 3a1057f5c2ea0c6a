"""L2 Init, regenerative regularization (Kumar, Marklund & Van Roy, 2023).

The loss gets ``λ ‖θ − θ₀‖²``: the parameters are pulled towards their initial values ``θ₀``
instead of towards zero, which keeps them close to a trainable region.

``θ₀`` is the actor as built for the first task (all of it: every expert, the gating network, the
output layers and the log-std); it is saved with the agent's checkpoints, so a resumed run keeps
the original anchor. The penalty acts on the actor only, through PPO's actor loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from sphere_rl.algo.hooks import TrainingCallback
from sphere_rl.config import ExperimentConfig
from sphere_rl.nn.policy import PolicyOutput


def l2_init_penalty(params: Sequence[Tensor], anchors: Sequence[Tensor]) -> Tensor:
    """``Σ_i ‖params[i] − anchors[i]‖²`` (a scalar)."""
    total = torch.zeros((), device=params[0].device)
    for param, anchor in zip(params, anchors, strict=True):
        total = total + (param - anchor).square().sum()
    return total


class L2Init(TrainingCallback):
    """L2 Init as a PPO actor penalty (fixed coefficient); a callback only to checkpoint ``θ₀``.

    Args:
        coef: ``λ``.
    """

    name = "l2_init"
    mode = "fixed"
    pcgrad = False

    def __init__(self, coef: float = 1e-2) -> None:
        self.coef = coef
        self.anchors: list[Tensor] = []

    @classmethod
    def from_config(cls, cfg: ExperimentConfig) -> L2Init:
        return cls(coef=cfg.l2_init_coef)

    def attach(self, agent) -> None:
        self.anchors = [p.detach().clone() for p in agent.actor.parameters()]

    def penalty(self, output: PolicyOutput, obs: Tensor, agent) -> Tensor:
        return l2_init_penalty(list(agent.actor.parameters()), self.anchors)

    def state_dict(self) -> dict:
        return {"anchors": self.anchors}

    def load_state_dict(self, state: dict) -> None:
        for anchor, saved in zip(self.anchors, state["anchors"], strict=True):
            anchor.copy_(saved)
