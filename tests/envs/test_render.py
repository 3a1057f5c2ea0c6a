"""Video frames are upright: world "up" is image "up" for MetaWorld's and H1's cameras."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sphere_rl.envs.render import camera_is_upside_down, upright

# Recolour the scene by height, render through render_frame, and compare where the colours land:
# geoms whose centre is well below the table top become pure green, those well above pure red,
# the rest blue. In an upright frame green pixels lie below red ones.
SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from sphere_rl.envs import make_env
    from sphere_rl.envs.render import close_renderer, render_frame

    def rows(frame, channel):
        rgb = frame.astype(int)
        others = [c for c in range(3) if c != channel]
        mask = (rgb[..., channel] > rgb[..., others[0]] + 30) & (
            rgb[..., channel] > rgb[..., others[1]] + 30)
        return np.nonzero(mask)[0]

    for task, low, high in (("reach-v3", -0.05, 0.3), ("h1-stand", 0.3, 0.9)):
        env = make_env(task, seed=0)
        env.reset(seed=0)
        base = env.unwrapped
        if hasattr(base, "_raw"):  # MetaWorld
            model, data = base._raw.model, base._raw.data
        else:  # H1: recolour the visual model that rendering uses, not the shared physics one
            from sphere_rl.envs.h1.render import visual_model_and_data
            model, data = visual_model_and_data(base)
        z = data.geom_xpos[:, 2]
        model.geom_rgba[:] = (0, 0, 1, 1)
        model.geom_rgba[z < low] = (0, 1, 0, 1)
        model.geom_rgba[z > high] = (1, 0, 0, 1)
        model.geom_matid[:] = -1  # no textures: plain colours
        frame = render_frame(env, 160, 120)
        green, red = rows(frame, 1), rows(frame, 0)
        assert len(green) > 100 and len(red) > 100, (task, len(green), len(red))
        assert green.mean() > red.mean() + 10, (task, green.mean(), red.mean())
        print(task, round(green.mean()), round(red.mean()))
        close_renderer(env)
        env.close()
    print("ok")
    """
)


def test_frames_are_upright_with_egl():
    env = dict(os.environ, MUJOCO_GL="egl")
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    output = result.stderr + result.stdout
    if "rendering is unavailable" in output:
        pytest.skip(f"no working EGL backend here: {output.strip().splitlines()[-1]}")
    assert result.returncode == 0, output[-3000:]
    assert result.stdout.strip().endswith("ok")


def test_upside_down_camera_frames_are_rotated_not_mirrored():
    # MetaWorld's corner camera: xyaxes="-1 1 0 -0.2 -0.2 -1" (image up axis points down).
    x = np.array([-1.0, 1.0, 0.0]) / np.sqrt(2)
    y = np.array([-0.2, -0.2, -1.0]) / np.linalg.norm([-0.2, -0.2, -1.0])
    corner = np.column_stack([x, y, np.cross(x, y)])
    assert camera_is_upside_down(corner.ravel())
    level = np.column_stack([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])  # looking along +y
    assert not camera_is_upside_down(level)
    frame = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    turned = upright(frame, corner)
    # A camera rolled by 180° sees the top-left pixel at the bottom-right.
    assert np.array_equal(turned[0, 0], frame[1, 2]) and np.array_equal(turned[1, 2], frame[0, 0])
    assert upright(frame, level) is frame
