"""One ``MjData`` that a process's H1 environments of one model take turns on.

An ``MjData`` of the H1 model costs 0.95 MiB resident (its 0.52 MB buffer plus the Python
binding's views), so a 2,048-step ``hb5`` run's 128 environments held 122 MiB of simulator state
of which one is in use at any moment. Each environment instead keeps MuJoCo's integration state
(``mjSTATE_INTEGRATION``: 247 float64 for H1) and, when it steps, loads it into the workspace of
its model and thread, evicting the previous occupant's state first. The integration state is
everything ``mj_step`` reads (the exact-resume snapshots rely on the same fact), so a step on the
workspace computes bit for bit what the same step on a private ``MjData`` computes;
``tests/envs/test_h1_shared_model.py`` steps interleaved environments against private ones.

Workspaces are per thread, so environments stepped from different threads never share one.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import mujoco
import numpy as np

from sphere_rl.envs.h1.readout import H1Readout
from sphere_rl.envs.snapshot import PHYSICS_STATE, get_physics_state, set_physics_state


class Workspace:
    """An ``MjData`` of ``model``, its readout views, and which environment's state it holds."""

    def __init__(self, model: mujoco.MjModel) -> None:
        self.model = model
        self.data = mujoco.MjData(model)
        self.readout = H1Readout(model, self.data)
        self.qpos, self.qvel, self.ctrl = self.data.qpos, self.data.qvel, self.data.ctrl
        self.initial_state = get_physics_state(model, self.data)  # a fresh MjData's
        self._occupant: weakref.ref[Any] | None = None

    def occupied_by(self, tenant: Any) -> bool:
        return self._occupant is not None and self._occupant() is tenant

    def take(self, tenant: Any, state: np.ndarray, derived: bool) -> None:
        """Make the workspace hold ``tenant``'s integration ``state`` (``(state_size,)``), after
        saving the current occupant's into its ``physics_state`` (in place).

        ``derived=False`` loads only the integration state, enough for ``mj_step``/``mj_forward``
        (which recompute everything else); ``derived=True`` also recomputes positions, contacts
        and sensors, for a caller that reads them before stepping.
        """
        if self.occupied_by(tenant):
            return
        previous = self._occupant() if self._occupant is not None else None
        if previous is not None:
            mujoco.mj_getState(self.model, self.data, previous.physics_state, PHYSICS_STATE)
        if derived:
            set_physics_state(self.model, self.data, state)
        else:
            mujoco.mj_setState(self.model, self.data, state, PHYSICS_STATE)
        self._occupant = weakref.ref(tenant)

    def save(self, tenant: Any) -> None:
        """Copy the workspace's state into ``tenant.physics_state`` if ``tenant`` occupies it."""
        if self.occupied_by(tenant):
            mujoco.mj_getState(self.model, self.data, tenant.physics_state, PHYSICS_STATE)

    def vacate(self, tenant: Any) -> None:
        """Forget ``tenant`` (after saving its state) so that its next use reloads the state."""
        if self.occupied_by(tenant):
            self.save(tenant)
            self._occupant = None


_per_thread = threading.local()


def shared_workspace(model: mujoco.MjModel) -> Workspace:
    """The calling thread's workspace for ``model`` (a process-wide shared model, which outlives
    every workspace, so its ``id`` is a safe key)."""
    table: dict[int, Workspace] = _per_thread.__dict__.setdefault("workspaces", {})
    workspace = table.get(id(model))
    if workspace is None:
        workspace = table[id(model)] = Workspace(model)
    return workspace
