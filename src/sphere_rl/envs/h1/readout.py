"""Read the quantities the H1 rewards and terminations need straight out of ``MjData``.

Ids and array views are resolved once at construction, so a per-step read is an index into live
MuJoCo memory rather than a name lookup. Values reflect ``MjData`` as left by ``mj_step``: positions
and sensors are those computed at the start of the last physics substep, as in HumanoidBench.
"""

from __future__ import annotations

import mujoco
import numpy as np

from sphere_rl.envs.h1.arenas import POLE_GEOM_PREFIX
from sphere_rl.envs.h1.model import COM_VELOCITY_SENSOR


class H1Readout:
    """Views of head/foot heights, torso uprightness, centre-of-mass velocity, forces, contacts."""

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData) -> None:
        self._data = data
        # Cached views into MjData buffers; they stay valid for the lifetime of ``data``.
        self._qpos = data.qpos
        self._site_xpos = data.site_xpos
        self._xmat = data.xmat
        self._actuator_force = data.actuator_force
        self._head = model.site("head").id
        self._left_foot = model.site("left_foot").id
        self._right_foot = model.site("right_foot").id
        self._torso = model.body("torso_link").id
        adr = int(model.sensor_adr[model.sensor(COM_VELOCITY_SENSOR).id])
        self._com_velocity = data.sensordata[adr : adr + 3]
        names = [model.geom(i).name for i in range(model.ngeom)]
        self._is_pole = np.array([name.startswith(POLE_GEOM_PREFIX) for name in names], bool)
        self._has_poles = bool(self._is_pole.any())

    def pelvis_height(self) -> float:
        """World z of the floating base (qpos[2])."""
        return float(self._qpos[2])

    def head_height(self) -> float:
        """World z of the ``head`` site, 0.7 m above the torso joint."""
        return float(self._site_xpos[self._head, 2])

    def foot_heights(self) -> tuple[float, float]:
        """World z of the ``left_foot`` and ``right_foot`` sites (ankle frames, 5 cm down)."""
        return float(self._site_xpos[self._left_foot, 2]), float(
            self._site_xpos[self._right_foot, 2]
        )

    def torso_upright(self) -> float:
        """World-z component of the torso's z axis: 1 upright, 0 horizontal, −1 upside down."""
        return float(self._xmat[self._torso, 8])

    def com_velocity(self) -> np.ndarray:
        """Linear velocity of the whole robot's centre of mass (pelvis subtree), a fresh copy."""
        return self._com_velocity.copy()

    def com_forward_speed(self) -> float:
        """x component of :meth:`com_velocity`."""
        return float(self._com_velocity[0])

    def com_horizontal_velocity(self) -> tuple[float, float]:
        """x and y components of :meth:`com_velocity`."""
        return float(self._com_velocity[0]), float(self._com_velocity[1])

    def actuator_force(self) -> np.ndarray:
        """Forces of the 19 actuators (read-only view; copy before keeping it)."""
        return self._actuator_force

    def touching_pole(self) -> bool:
        """Whether any active contact involves a pole.

        Poles are static, and MuJoCo never collides two static geoms, so the other geom of such a
        contact is always part of the robot (HumanoidBench additionally excludes the floor, which
        therefore never matters).
        """
        if not self._has_poles or self._data.ncon == 0:
            return False
        return bool(self._is_pole[self._data.contact.geom].any())
