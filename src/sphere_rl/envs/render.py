"""Offscreen RGB frames of any MuJoCo task here (MetaWorld or H1), for videos of policies.

MuJoCo chooses its OpenGL backend when it is first imported, from ``MUJOCO_GL``; on a headless
machine use ``MUJOCO_GL=egl`` (GPU or Mesa) or ``MUJOCO_GL=osmesa``. :func:`ensure_headless_gl`
sets ``egl`` if nothing was chosen.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from sphere_rl.envs.gl import ensure_headless_gl  # noqa: F401  (kept importable from here)
from sphere_rl.envs.h1.render import render_frame as render_h1
from sphere_rl.envs.mujoco_renderer import cached_renderer

METAWORLD_CAMERA = "corner"  # sees the whole table, gripper and objects


def close_renderer(env: gym.Env) -> None:
    """Release the renderer :func:`render_frame` keeps on ``env`` (its OpenGL context), now rather
    than at interpreter exit, where EGL tears down in an arbitrary order and prints errors."""
    base = env.unwrapped
    renderer = getattr(base, "_renderer", None)
    if renderer is not None:
        renderer.close()
        base._renderer = None


def render_frame(env: gym.Env, width: int = 320, height: int = 240) -> np.ndarray:
    """``(height, width, 3)`` uint8 frame of the environment's current state, upright (row 0 at
    the top, world up pointing up in the image; see :func:`upright`).

    Raises:
        ValueError: for environments that are not MuJoCo tasks of this package.
        RuntimeError: when no OpenGL backend works (set ``MUJOCO_GL``).
    """
    base = env.unwrapped
    raw = getattr(base, "_raw", None)
    if raw is None:  # the H1 tasks have their own tracking camera
        if not hasattr(base, "model"):
            raise ValueError(f"cannot render {type(base).__name__}: not a MuJoCo task")
        return render_h1(env, width=width, height=height)
    renderer = cached_renderer(base, raw.model, width, height)
    renderer.update_scene(raw.data, camera=METAWORLD_CAMERA)
    frame = renderer.render()
    camera = raw.model.camera(METAWORLD_CAMERA).id
    return upright(frame, raw.data.cam_xmat[camera])


def camera_is_upside_down(cam_xmat: np.ndarray) -> bool:
    """Whether a camera's image "up" direction points below the horizon.

    ``cam_xmat`` is the camera's ``(9,)`` or ``(3, 3)`` world orientation (``MjData.cam_xmat``);
    its second column is the image's up axis in world coordinates (z is up in every task here).
    MetaWorld's ``corner`` camera is defined with ``xyaxes="-1 1 0 -0.2 -0.2 -1"``: its up axis
    points almost straight down, so its raw images show the table on the ceiling.
    """
    return float(np.asarray(cam_xmat).reshape(3, 3)[2, 1]) < 0.0


def upright(frame: np.ndarray, cam_xmat: np.ndarray) -> np.ndarray:
    """``frame`` as seen by the same camera turned 180° about its optical axis if it is upside
    down (a rotation of the image, not a mirror: left and right stay where they are in the world).
    """
    if camera_is_upside_down(cam_xmat):
        return np.ascontiguousarray(frame[::-1, ::-1])
    return frame
