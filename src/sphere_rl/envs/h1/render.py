"""Offscreen RGB frames of an H1 environment.

MuJoCo picks its OpenGL backend when it is first imported, from ``MUJOCO_GL``: on a headless
machine run with ``MUJOCO_GL=egl`` (GPU or Mesa EGL) or ``MUJOCO_GL=osmesa``.
"""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np

from sphere_rl.envs.render import cached_renderer

# A camera that follows the pelvis from 5 m, 20 degrees above the horizon, seen from the side.
_TRACK_DISTANCE = 5.0
_TRACK_ELEVATION = -20.0
_TRACK_AZIMUTH = 90.0


def _tracking_camera(model: mujoco.MjModel) -> mujoco.MjvCamera:
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
    camera.trackbodyid = model.body("pelvis").id
    camera.distance = _TRACK_DISTANCE
    camera.elevation = _TRACK_ELEVATION
    camera.azimuth = _TRACK_AZIMUTH
    return camera


def render_frame(env: gym.Env, width: int = 256, height: int = 256) -> np.ndarray:
    """Render the current state of an H1 environment (wrapped or not) as a ``(height, width, 3)``
    uint8 array. The renderer is created on first use and kept on the environment.

    Raises:
        RuntimeError: when no OpenGL backend can be initialised (set ``MUJOCO_GL``).
    """
    base = env.unwrapped
    model, data = base.model, base.data
    renderer = cached_renderer(base, model, width, height)
    renderer.update_scene(data, camera=_tracking_camera(model))
    return renderer.render()
