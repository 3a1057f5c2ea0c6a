"""The contract between :class:`~sphere_rl.envs.vector.VectorTaskEnv` and what runs the
simulation: a :class:`Backend` and the :class:`BackendStep` it returns.

The reference backend lives in :mod:`sphere_rl.envs.vector`, envpool's in
:mod:`sphere_rl.envs.envpool_backend`; both import the contract from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np


@dataclass
class BackendStep:
    """What a backend returns from one batched step, before episode bookkeeping.

    ``obs`` is already the reset observation where an episode ended, ``final_obs`` the ended
    episode's last observation there (else equal to ``obs``), and ``step_success`` the success flag
    of the step just taken (for ended episodes: of their last step); MetaWorld's is its per-step
    flag, not the sticky one.
    """

    obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_obs: np.ndarray
    step_success: np.ndarray


class Backend(Protocol):
    """The simulation side of a :class:`VectorTaskEnv`."""

    num_envs: int
    single_observation_space: gym.spaces.Box
    single_action_space: gym.spaces.Box
    supports_state: bool  # whether get_state/set_state work

    def reset(self, seeds: list[int] | None) -> np.ndarray:
        """Reset every sub-environment; ``seeds`` (one per env) or ``None`` to continue streams."""
        ...

    def step(self, actions: np.ndarray) -> BackendStep: ...

    def get_state(self) -> list[Any]:
        """One picklable snapshot per sub-environment (see each env's ``get_state``)."""
        ...

    def set_state(self, states: list[Any]) -> None:
        """Load one :meth:`get_state` snapshot into each sub-environment."""
        ...

    def close(self) -> None: ...
