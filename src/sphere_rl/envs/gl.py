"""Choosing and checking MuJoCo's OpenGL backend before anything renders.

MuJoCo reads ``MUJOCO_GL`` once, when it is first imported, and a backend that does not work here
(no EGL device, no libOSMesa) fails inside ``import mujoco`` or at the first frame. So the check
runs in a child process: this one has not committed to a backend, and a broken one cannot crash it.
"""

from __future__ import annotations

import os
import subprocess
import sys

# Creates the offscreen context a video needs and draws nothing.
_PROBE = "import mujoco; c = mujoco.GLContext(16, 16); c.make_current(); c.free()"


def ensure_headless_gl() -> None:
    """Pick EGL for MuJoCo's offscreen rendering unless the user chose a backend."""
    os.environ.setdefault("MUJOCO_GL", "egl")


def offscreen_gl_problem(timeout_s: float = 120.0) -> str | None:
    """``None`` if MuJoCo can open an offscreen context with the current ``MUJOCO_GL``, else a
    one-line message naming the variable and the values to try."""
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        reason = f"no context after {timeout_s:.0f} s"
    else:
        if probe.returncode == 0:
            return None
        lines = [ln.strip() for ln in probe.stderr.splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"exit code {probe.returncode}"
    backend = os.environ.get("MUJOCO_GL", "(unset)")
    return (
        f"MuJoCo offscreen rendering does not work here with MUJOCO_GL={backend} ({reason}); set"
        " MUJOCO_GL=egl (a GPU or Mesa's EGL) or MUJOCO_GL=osmesa (libOSMesa and PyOpenGL) and"
        " run again"
    )
