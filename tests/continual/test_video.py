"""``sphere eval --video``: captioned GIF/MP4 videos of a policy (rendering skipped without GL)."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from sphere_rl.cli import train as train_cli
from sphere_rl.config import build_config
from sphere_rl.continual.runner import ContinualRunner
from sphere_rl.continual.video import CAPTION_HEIGHT, VIDEO_FORMATS, caption_frame, write_video

CLI = [sys.executable, "-c", "from sphere_rl.cli.app import main; main()"]


def test_eval_writes_a_gif_per_task(tmp_path, tiny_overrides):
    # RL protocol: a fresh agent per task, so one run can mix MetaWorld and H1.
    cfg = build_config({**tiny_overrides, "tasks": "reach-v3,h1-stand", "steps_per_task": 100,
                        "diag_entk": False, "protocol": "rl"})  # fmt: skip
    ContinualRunner.open(cfg, tmp_path / "run", show_progress=False).run()
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    result = subprocess.run(
        # Software OpenGL renders ~1 frame/s on a busy CPU: a frame every 25 steps keeps it short.
        [*CLI, "eval", str(tmp_path / "run"), "--episodes", "1", "--video", str(tmp_path / "v"),
         "--video-every", "25"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    if result.returncode != 0 and "rendering is unavailable" in result.stderr + result.stdout:
        pytest.skip("no OpenGL backend for MuJoCo on this machine")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "rendering reach-v3" in result.stdout  # progress, as plain lines when piped
    for name in ("00-reach-v3.gif", "01-h1-stand.gif"):
        gif = Image.open(tmp_path / "v" / name)
        assert gif.n_frames >= 2
        frame = np.asarray(gif.convert("RGB"))
        assert frame.std() > 5  # a scene, not a blank image
    assert json.loads((tmp_path / "run/status.json").read_text())["state"] == "finished"


def _striped_frames(count: int, height: int = 48, width: int = 64) -> list[np.ndarray]:
    """Red top half, blue bottom half, a white column that moves right frame by frame."""
    frames = []
    for i in range(count):
        frame = np.zeros((height, width, 3), np.uint8)
        frame[: height // 2] = (220, 20, 20)
        frame[height // 2 :] = (20, 20, 220)
        frame[:, 4 * i : 4 * i + 4] = 255
        frames.append(frame)
    return frames


@pytest.mark.parametrize("fmt", VIDEO_FORMATS)
def test_write_video_round_trip_keeps_frames_and_orientation(tmp_path, fmt):
    import imageio.v3 as iio

    frames = _striped_frames(10)
    path = write_video(frames, tmp_path / f"clip.{fmt}", fps=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"clip.{fmt}"]  # no partial file left
    back = iio.imread(path, index=None)[..., :3].astype(int)
    assert back.shape == (10, 48, 64, 3)
    top, bottom = back[:, 2:20, 40:60], back[:, 28:46, 40:60]  # away from the moving column
    assert (top[..., 0] > 180).all() and (top[..., 2] < 70).all()
    assert (bottom[..., 2] > 180).all() and (bottom[..., 0] < 70).all()
    # Frame order survives: the white column is where each frame put it.
    for i in range(10):
        assert back[i, 30, 4 * i + 2].min() > 200, i


def test_write_video_rejects_unknown_formats_and_empty_input(tmp_path):
    with pytest.raises(ValueError, match="must end in one of"):
        write_video(_striped_frames(2), tmp_path / "clip.avi")
    with pytest.raises(ValueError, match="no frames"):
        write_video([], tmp_path / "clip.gif")
    assert list(tmp_path.iterdir()) == []


def test_caption_is_drawn_in_a_band_at_the_top():
    frame = np.full((120, 160, 3), 128, np.uint8)
    captioned = caption_frame(frame, "reach-v3   step 12   success 1")
    band = captioned[:CAPTION_HEIGHT]
    assert (band.max(axis=2) < 10).mean() > 0.5  # a dark band ...
    assert (band.min(axis=2) > 200).sum() > 30  # ... with white text on it
    assert np.array_equal(captioned[CAPTION_HEIGHT:], frame[CAPTION_HEIGHT:])  # rest untouched
    assert np.array_equal(frame, np.full_like(frame, 128))  # the input is not modified
    other = caption_frame(frame, "reach-v3   step 14   success 1")
    assert not np.array_equal(other[:CAPTION_HEIGHT], band)


def test_eval_rejects_an_unknown_video_format(tmp_path):
    app = typer.Typer()
    app.callback()(lambda: None)
    train_cli.register(app)
    result = CliRunner().invoke(
        app, ["eval", str(tmp_path), "--video", str(tmp_path / "v"), "--video-format", "avi"]
    )
    assert result.exit_code == 2
    assert "--video-format must be one of gif, mp4, got 'avi'" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(app, ["eval", str(tmp_path), "--video-every", "0"])
    assert result.exit_code == 2 and "--video-every must be >= 1, got 0" in result.output


RECORD_SCRIPT = textwrap.dedent(
    """
    import sys
    import imageio.v3 as iio
    import torch
    from sphere_rl.config import build_config
    from sphere_rl.continual.video import CAPTION_HEIGHT, record_video
    from sphere_rl.methods import build_agent

    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = build_config({"tasks": "reach-v3", "hidden": [16], "n_experts": 2})
    agent = build_agent(cfg, 39, 4)
    steps = []
    # Software OpenGL renders about one frame per second on a busy CPU: keep few frames.
    result = record_video(agent, "reach-v3", sys.argv[1], seed=0, every=100, on_step=steps.append)
    video = iio.imread(sys.argv[1], index=None)
    assert steps == list(range(1, 501)), steps[-3:]  # progress after every step
    assert result["steps"] == 500
    assert video.shape == (6, 240, 320, 3), video.shape  # steps 0, 100, ..., 400 and the last
    band = video[:, : CAPTION_HEIGHT - 2, :200]
    assert (band.max(axis=3) < 40).mean() > 0.5 and (band.min(axis=3) > 180).any()
    print("ok")
    """
)


def test_record_video_writes_a_captioned_mp4(tmp_path):
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    result = subprocess.run(
        [sys.executable, "-c", RECORD_SCRIPT, str(tmp_path / "reach.mp4")],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    output = result.stderr + result.stdout
    if "rendering is unavailable" in output:
        pytest.skip("no OpenGL backend for MuJoCo on this machine")
    assert result.returncode == 0, output[-3000:]
    assert result.stdout.strip().endswith("ok")
