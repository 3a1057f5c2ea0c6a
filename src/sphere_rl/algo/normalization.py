"""Running observation normalisation whose statistics can be saved and carried across tasks."""

from __future__ import annotations

import numpy as np


class RunningMeanStd:
    """Streaming mean and variance (Chan et al. parallel update), used to normalise observations.

    Args:
        shape: shape of one observation.
        clip: normalised values are clipped to ``[-clip, clip]``.
        epsilon: variance floor and initial pseudo-count.
    """

    def __init__(self, shape: tuple[int, ...], clip: float = 10.0, epsilon: float = 1e-8) -> None:
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = epsilon
        self.clip = clip
        self.epsilon = epsilon

    def update(self, batch: np.ndarray) -> None:
        """Fold a ``(B, *shape)`` batch into the statistics."""
        batch_mean = batch.mean(axis=0)
        batch_var = batch.var(axis=0)
        batch_count = batch.shape[0]
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count
        self.var = (m2 + delta**2 * self.count * batch_count / total) / total
        self.count = total

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """``(B, *shape)`` → float32 normalised and clipped observations."""
        normed = (obs - self.mean) / np.sqrt(self.var + self.epsilon)
        return np.clip(normed, -self.clip, self.clip).astype(np.float32)

    def state_dict(self) -> dict:
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean = np.asarray(state["mean"], np.float64).copy()
        self.var = np.asarray(state["var"], np.float64).copy()
        self.count = float(state["count"])


class IdentityNormalizer(RunningMeanStd):
    """Same interface, no normalisation (``norm_obs=False``)."""

    def update(self, batch: np.ndarray) -> None:
        pass

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        return obs.astype(np.float32)
