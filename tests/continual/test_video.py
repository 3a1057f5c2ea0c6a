"""``sphere eval --video``: a GIF of a trained policy, rendered offscreen (skipped without GL)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sphere_rl.config import build_config
from sphere_rl.continual.runner import ContinualRunner

CLI = [sys.executable, "-c", "from sphere_rl.cli.app import main; main()"]


def test_eval_writes_a_gif_per_task(tmp_path, tiny_overrides):
    # RL protocol: a fresh agent per task, so one run can mix MetaWorld and H1.
    cfg = build_config({**tiny_overrides, "tasks": "reach-v3,h1-stand", "steps_per_task": 100,
                        "diag_entk": False, "protocol": "rl"})  # fmt: skip
    ContinualRunner.open(cfg, tmp_path / "run", show_progress=False).run()
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    result = subprocess.run(
        [*CLI, "eval", str(tmp_path / "run"), "--episodes", "1", "--video", str(tmp_path / "v")],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    if result.returncode != 0 and "rendering is unavailable" in result.stderr + result.stdout:
        pytest.skip("no OpenGL backend for MuJoCo on this machine")
    assert result.returncode == 0, result.stderr + result.stdout
    for name in ("00-reach-v3.gif", "01-h1-stand.gif"):
        gif = Image.open(tmp_path / "v" / name)
        assert gif.n_frames > 5
        frame = np.asarray(gif.convert("RGB"))
        assert frame.std() > 5  # a scene, not a blank image
    assert json.loads((tmp_path / "run/status.json").read_text())["state"] == "finished"
