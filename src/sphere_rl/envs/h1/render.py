"""Offscreen RGB frames of an H1 environment.

MuJoCo picks its OpenGL backend when it is first imported, from ``MUJOCO_GL``: on a headless
machine run with ``MUJOCO_GL=egl`` (GPU or Mesa EGL) or ``MUJOCO_GL=osmesa``.
"""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np

from sphere_rl.envs.h1.model import load_h1_model
from sphere_rl.envs.mujoco_renderer import cached_renderer

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


def visual_model_and_data(base: gym.Env) -> tuple[mujoco.MjModel, mujoco.MjData]:
    """A model with the robot's visual meshes and an ``MjData`` in the environment's current pose.

    An environment on the shared physics-only model has nothing to draw but colliders, so on first
    use it gets a private full model (:func:`load_h1_model`, same bodies and joints) and its own
    ``MjData``, into which each call copies the state and recomputes the kinematics.
    """
    if not getattr(base, "physics_only", False):
        return base.model, base.data
    if base._visual is None:
        model = load_h1_model(*base.model_options)
        base._visual = (model, mujoco.MjData(model))
    model, data = base._visual
    data.qpos[:] = base.data.qpos
    data.qvel[:] = base.data.qvel
    data.time = base.data.time
    mujoco.mj_forward(model, data)
    return model, data


def render_frame(env: gym.Env, width: int = 256, height: int = 256) -> np.ndarray:
    """Render the current state of an H1 environment (wrapped or not) as a ``(height, width, 3)``
    uint8 array. The renderer (and, for a physics-only model, a full visual model) is created on
    first use and kept on the environment.

    Raises:
        RuntimeError: when no OpenGL backend can be initialised (set ``MUJOCO_GL``).
    """
    base = env.unwrapped
    model, data = visual_model_and_data(base)
    renderer = cached_renderer(base, model, width, height)
    renderer.update_scene(data, camera=_tracking_camera(model))
    return renderer.render()
