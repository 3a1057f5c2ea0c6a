"""The benchmark registry and the `sphere envs` command."""

from __future__ import annotations

import dataclasses

import pytest
import typer
from typer.testing import CliRunner

from sphere_rl.envs import list_benchmarks, list_tasks, resolve_tasks, task_spec
from sphere_rl.envs.registry import CW10

CW10_ORDER = [
    "hammer-v3",
    "push-wall-v3",
    "faucet-close-v3",
    "push-back-v3",
    "stick-pull-v3",
    "handle-press-side-v3",
    "push-v3",
    "shelf-place-v3",
    "window-close-v3",
    "peg-unplug-side-v3",
]


def test_named_benchmarks_resolve_in_training_order():
    assert resolve_tasks("cw10") == CW10_ORDER
    assert resolve_tasks("CW20") == CW10_ORDER + CW10_ORDER
    assert resolve_tasks("hb5") == ["h1-stand", "h1-walk", "h1-pole", "h1-slide", "h1-run"]
    assert set(list_benchmarks()) == {"cw10", "cw20", "hb5"}


def test_user_task_lists_resolve():
    assert resolve_tasks(tasks="hammer-v3, push-v3") == ["hammer-v3", "push-v3"]
    assert resolve_tasks(tasks=["reach-v3", "h1-walk", "reach-v3"]) == [
        "reach-v3",
        "h1-walk",
        "reach-v3",
    ]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"benchmark": "cw11"}, "'cw10'"),
        ({"tasks": "hammer-v3,push-wal-v3"}, "'push-wall-v3'"),
        ({"tasks": ["h1-wlak"]}, "'h1-walk'"),
    ],
)
def test_unknown_names_list_valid_names_and_closest_match(kwargs, expected):
    with pytest.raises(ValueError, match="Did you mean") as info:
        resolve_tasks(**kwargs)
    message = str(info.value)
    assert expected in message
    assert "Valid" in message and ("hb5" in message or "window-close-v3" in message)


@pytest.mark.parametrize(
    "kwargs", [{}, {"benchmark": "cw10", "tasks": "push-v3"}, {"tasks": " , "}, {"tasks": []}]
)
def test_ambiguous_or_empty_requests_are_rejected(kwargs):
    with pytest.raises(ValueError):
        resolve_tasks(**kwargs)


def test_all_fifty_metaworld_tasks_and_the_h1_tasks_are_listed():
    metaworld = list_tasks("metaworld")
    assert len(metaworld) == 50 == len(set(metaworld))
    assert all(name.endswith("-v3") for name in metaworld)
    assert set(CW10) <= set(metaworld)
    assert list_tasks("h1") == ["h1-stand", "h1-walk", "h1-pole", "h1-slide", "h1-run"]
    assert list_tasks() == metaworld + list_tasks("h1")
    with pytest.raises(ValueError, match="family"):
        list_tasks("atari")  # type: ignore[arg-type]


def test_task_specs():
    hammer = task_spec("sweep-into-v3")
    assert (hammer.family, hammer.obs_dim, hammer.act_dim, hammer.max_episode_steps) == (
        "metaworld",
        39,
        4,
        500,
    )
    assert hammer.success_bar is None and "success" in hammer.success
    stand, walk = task_spec("h1-stand"), task_spec("h1-walk")
    assert (walk.family, walk.obs_dim, walk.act_dim, walk.max_episode_steps) == ("h1", 51, 19, 1000)
    assert (stand.success_bar, walk.success_bar) == (800.0, 700.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        walk.obs_dim = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="'hammer-v3'"):
        task_spec("hammer")


def _cli() -> typer.Typer:
    from sphere_rl.cli import envs

    app = typer.Typer()
    app.callback()(lambda: None)  # keep `envs` a named sub-command, as in the real app
    envs.register(app)
    return app


def test_cli_envs_lists_benchmarks_and_tasks():
    result = CliRunner().invoke(_cli(), ["envs"])
    assert result.exit_code == 0, result.output
    for name in ("cw10", "cw20", "hb5", "h1-pole", "peg-unplug-side-v3", "sweep-into-v3"):
        assert name in result.output
    assert "Tasks (55)" in result.output


def test_cli_envs_family_filter_and_bad_family():
    runner = CliRunner()
    result = runner.invoke(_cli(), ["envs", "--family", "h1"])
    assert result.exit_code == 0 and "Tasks (5)" in result.output
    assert "sweep-into-v3" not in result.output
    assert runner.invoke(_cli(), ["envs", "--family", "atari"]).exit_code != 0


def test_cli_envs_is_registered_on_the_sphere_app():
    from sphere_rl.cli import app as app_module

    app_module._register_all()
    names = {command.name for command in app_module.app.registered_commands}
    assert "envs" in names
