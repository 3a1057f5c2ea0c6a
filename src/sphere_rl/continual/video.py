"""Videos of a policy: one deterministic episode rendered offscreen, captioned, saved as GIF or MP4.

Frames come from :func:`sphere_rl.envs.render.render_frame` (upright images, row 0 at the top).
Each frame carries a caption with the task, the step and the success flag so far. GIFs are written
with Pillow, MP4 (H.264) with imageio's ffmpeg plugin; both are written to a temporary file and
renamed, so an interrupted recording never leaves a truncated video behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from sphere_rl.algo.ppo import PPOAgent
from sphere_rl.envs import make_env

VIDEO_FORMATS: tuple[str, ...] = ("gif", "mp4")
FPS = 25  # MetaWorld and H1 both step at ~50-80 Hz; every 2nd frame plays near real time
CAPTION_HEIGHT = 18  # pixels of the band at the top of each frame that holds the caption


def caption_frame(frame: np.ndarray, text: str) -> np.ndarray:
    """``(H, W, 3)`` uint8 copy of ``frame`` with ``text`` in white on a black band at the top."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(np.ascontiguousarray(frame))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, image.width, CAPTION_HEIGHT - 1), fill=(0, 0, 0))
    font = ImageFont.load_default(size=CAPTION_HEIGHT - 5)
    draw.text((4, 1), text, fill=(255, 255, 255), font=font)
    return np.asarray(image)


def video_format(path: Path) -> str:
    """``"gif"`` or ``"mp4"`` from the file suffix; ``ValueError`` for anything else."""
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in VIDEO_FORMATS:
        raise ValueError(f"video file must end in one of {VIDEO_FORMATS}, got {str(path)!r}")
    return fmt


def write_video(frames: Sequence[np.ndarray], path: Path, fps: int = FPS) -> Path:
    """Save ``(H, W, 3)`` uint8 frames as a looping GIF or an H.264 MP4 (by ``path``'s suffix).

    MP4 needs even frame sizes (yuv420p); odd sizes are padded by one black row/column.
    """
    path = Path(path)
    fmt = video_format(path)
    if not frames:
        raise ValueError("no frames to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        if fmt == "gif":
            from PIL import Image

            images = [Image.fromarray(f) for f in frames]
            images[0].save(
                partial, save_all=True, append_images=images[1:], duration=1000 // fps, loop=0
            )
        else:
            import imageio.v2 as imageio

            # macro_block_size=1 with even sizes keeps every pixel (no rescaling by imageio).
            with imageio.get_writer(
                partial, format="FFMPEG", fps=fps, codec="libx264", pixelformat="yuv420p",
                macro_block_size=1, quality=8,
            ) as writer:  # fmt: skip
                for frame in frames:
                    writer.append_data(_even(frame))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _even(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    return np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)))


@torch.no_grad()
def record_video(
    agent: PPOAgent,
    task: str,
    path: Path,
    seed: int,
    every: int = 2,
    width: int = 320,
    height: int = 240,
    caption: bool = True,
    on_step: Callable[[int], None] | None = None,
    **task_kwargs: object,
) -> dict[str, float]:
    """Run one deterministic episode of ``task`` and save every ``every``-th frame to ``path``.

    Args:
        agent: the policy; its mean action is used (the actor is in ``eval()`` mode meanwhile).
        task: task name; ``task_kwargs`` are passed to :func:`sphere_rl.envs.make_env`.
        path: ``.gif`` or ``.mp4`` file to write.
        seed: seed of the episode.
        every: keep one frame in ``every`` environment steps.
        width, height: frame size in pixels.
        caption: draw "task · step · success" on each frame.
        on_step: called with the number of environment steps taken so far (for progress display).

    Returns:
        The episode's ``success``, ``return`` and ``steps``.

    Raises:
        RuntimeError: when no OpenGL backend works for offscreen rendering.
        ValueError: for a path that is not a ``.gif`` or ``.mp4`` file.
    """
    from sphere_rl.envs.render import close_renderer, render_frame

    video_format(path)  # fail before running the episode
    env = make_env(task, seed=seed, **task_kwargs)
    was_training = agent.actor.training
    agent.actor.eval()
    frames, total, success = [], 0.0, 0.0

    def grab(step: int) -> None:
        frame = render_frame(env, width, height)
        if caption:
            frame = caption_frame(frame, f"{task}   step {step}   success {success:.0f}")
        frames.append(frame)

    try:
        obs, _ = env.reset(seed=seed)
        done, step = False, 0
        while not done:
            if step % every == 0:
                grab(step)
            action = agent.actor(agent.obs_tensor(obs[None])).mean[0].cpu().numpy()
            obs, reward, terminated, truncated, info = env.step(action)
            total += reward
            success = float(info["success"])
            done, step = terminated or truncated, step + 1
            if on_step is not None:
                on_step(step)
        grab(step)  # the final state, with the episode's success
    finally:
        agent.actor.train(was_training)
        close_renderer(env)
        env.close()
    write_video(frames, path)
    return {"success": success, "return": total, "steps": float(step)}
