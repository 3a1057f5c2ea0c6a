"""Pieces of an environment's state snapshot: MuJoCo physics, Gymnasium RNGs, the time limit.

A checkpoint has to continue every episode exactly where it stopped, so each environment exposes
``get_state() -> dict`` and ``set_state(state)`` (see :class:`sphere_rl.envs.vector.VectorTaskEnv`).
This module holds the parts they share. Snapshots are plain picklable data (NumPy arrays, numbers,
dicts), never references into a live simulator.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

# Everything mj_step reads: time, qpos, qvel, actuator activations, the constraint solver's warm
# start, controls, applied forces, mocap poses, equality activations, user data and plugin state.
PHYSICS_STATE = mujoco.mjtState.mjSTATE_INTEGRATION


def get_physics_state(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    """MuJoCo's full integration state, ``(mj_stateSize(model, mjSTATE_INTEGRATION),)`` float64."""
    state = np.empty(mujoco.mj_stateSize(model, PHYSICS_STATE), dtype=np.float64)
    mujoco.mj_getState(model, data, state, PHYSICS_STATE)
    return state


def checked_physics_state(model: mujoco.MjModel, state: np.ndarray) -> np.ndarray:
    """``state`` as float64, after checking that it is a :func:`get_physics_state` snapshot of a
    model of ``model``'s size.

    Raises:
        ValueError: naming the snapshot's shape and the one ``model`` needs.
    """
    state = np.asarray(state, dtype=np.float64)
    size = mujoco.mj_stateSize(model, PHYSICS_STATE)
    if state.shape != (size,):
        raise ValueError(f"physics state has shape {state.shape}, this model needs ({size},)")
    return state


def set_physics_state(model: mujoco.MjModel, data: mujoco.MjData, state: np.ndarray) -> None:
    """Load a :func:`get_physics_state` snapshot into ``data`` and recompute the derived
    quantities (positions, contacts, sensors), so that anything read before the next step (a
    rendered frame) shows the restored state."""
    state = checked_physics_state(model, state)
    mujoco.mj_setState(model, data, state, PHYSICS_STATE)
    mujoco.mj_forward(model, data)
    # mj_forward rewrites the solver's warm start, which would change the next step in its last
    # bits; loading the state again keeps the derived quantities and restores the warm start.
    mujoco.mj_setState(model, data, state, PHYSICS_STATE)


def get_rng_state(env: gym.Env) -> dict[str, Any] | None:
    """The state of a Gymnasium environment's ``np_random`` (``None`` if it was never created)."""
    generator = env._np_random
    if generator is None:
        return None
    return {"bit_generator": generator.bit_generator.state, "seed": env._np_random_seed}


def set_rng_state(env: gym.Env, state: dict[str, Any] | None) -> None:
    """Give ``env`` a generator in the :func:`get_rng_state` state (a new object: the caller
    re-links anything that shared the old one)."""
    if state is None:
        env._np_random, env._np_random_seed = None, None
        return
    bit_generator = getattr(np.random, state["bit_generator"]["bit_generator"])()
    bit_generator.state = state["bit_generator"]
    env._np_random = np.random.Generator(bit_generator)
    env._np_random_seed = state["seed"]


class StatefulTimeLimit(gym.wrappers.TimeLimit):
    """Gymnasium's ``TimeLimit`` whose ``get_state``/``set_state`` add the episode's step count to
    the wrapped environment's own snapshot."""

    def get_state(self) -> dict[str, Any]:
        return {"elapsed_steps": self._elapsed_steps, "env": self.env.get_state()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.env.set_state(state["env"])
        self._elapsed_steps = state["elapsed_steps"]
