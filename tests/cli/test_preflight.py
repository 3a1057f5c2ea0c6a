"""Checks that run before long work: ``sphere eval --video`` without a working offscreen OpenGL
fails before the first episode, naming MUJOCO_GL."""

from typer.testing import CliRunner

import sphere_rl.continual.evaluation as evaluation
from sphere_rl.cli.app import _register_all, app

_register_all()


def test_eval_video_without_working_gl_fails_before_the_first_episode(
    finished_run, tmp_path, monkeypatch
):
    monkeypatch.setenv("MUJOCO_GL", "no-such-backend")  # MuJoCo refuses it on import

    def no_episode(*args, **kwargs):
        raise AssertionError("an episode ran before the rendering check")

    monkeypatch.setattr(evaluation, "evaluate", no_episode)
    videos = tmp_path / "videos"
    result = CliRunner().invoke(
        app, ["eval", str(finished_run), "--video", str(videos)], terminal_width=300
    )
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and result.output.startswith("error:")
    assert "MUJOCO_GL=no-such-backend" in result.output
    assert "set MUJOCO_GL=egl" in result.output and "MUJOCO_GL=osmesa" in result.output
    assert not videos.exists()
