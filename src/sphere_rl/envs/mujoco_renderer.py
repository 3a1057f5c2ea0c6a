"""The MuJoCo offscreen renderer an environment keeps for its frames.

Shared by the MetaWorld frames of :mod:`sphere_rl.envs.render` and the H1 frames of
:mod:`sphere_rl.envs.h1.render`.
"""

from __future__ import annotations

import mujoco


def cached_renderer(
    owner: object, model: mujoco.MjModel, width: int, height: int
) -> mujoco.Renderer:
    """The ``mujoco.Renderer`` kept on ``owner`` (an environment), rebuilt when the size changes.

    Raises:
        RuntimeError: when no OpenGL backend works (set ``MUJOCO_GL``).
    """
    renderer = getattr(owner, "_renderer", None)
    if renderer is not None and (renderer.width, renderer.height) == (width, height):
        return renderer
    if renderer is not None:
        renderer.close()
    try:
        renderer = mujoco.Renderer(model, height=height, width=width)
    except Exception as error:  # backend failures surface as many exception types
        raise RuntimeError(
            "MuJoCo offscreen rendering is unavailable; set MUJOCO_GL=egl or MUJOCO_GL=osmesa"
            f" before running ({type(error).__name__}: {error})"
        ) from error
    owner._renderer = renderer
    return renderer
