"""Named task sequences (benchmarks) and per-task facts.

A *task* is one environment (``"hammer-v3"``, ``"h1-walk"``); a *benchmark* is an ordered sequence
of tasks trained one after another (``"cw10"``). Everything the rest of the code base needs to know
about a task before building it (dimensions, horizon, how success is decided) lives in
:class:`TaskSpec`, so that networks can be sized without constructing a simulator.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from typing import Any, Literal

Family = Literal["metaworld", "h1", "gym"]

CW10: tuple[str, ...] = (
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
)

# HumanoidBench's success bars: an episode succeeds when its return reaches the bar.
H1_SUCCESS_BARS: dict[str, float] = {
    "h1-stand": 800.0,
    "h1-walk": 700.0,
    "h1-pole": 700.0,
    "h1-slide": 700.0,
    "h1-run": 700.0,
}

BENCHMARKS: dict[str, tuple[str, ...]] = {
    "cw10": CW10,
    "cw20": CW10 + CW10,
    "hb5": ("h1-stand", "h1-walk", "h1-pole", "h1-slide", "h1-run"),
}

METAWORLD_OBS_DIM = 39
METAWORLD_ACT_DIM = 4
METAWORLD_MAX_EPISODE_STEPS = 500
H1_OBS_DIM = 51
H1_ACT_DIM = 19
H1_MAX_EPISODE_STEPS = 1000


@dataclass(frozen=True)
class TaskSpec:
    """Static facts about one task.

    Attributes:
        name: task name as accepted by :func:`sphere_rl.envs.make_env`.
        family: ``"metaworld"`` or ``"h1"``.
        obs_dim: length of the flat float32 observation.
        act_dim: length of the action; every action space is the box ``[-1, 1]^act_dim``.
        max_episode_steps: episodes are truncated after this many steps.
        success: how ``info["success"]`` is decided, in words.
        success_bar: return an episode needs to count as a success (H1 only, else ``None``).
    """

    name: str
    family: Family
    obs_dim: int
    act_dim: int
    max_episode_steps: int
    success: str
    success_bar: float | None = None


@functools.cache
def _metaworld_task_names() -> tuple[str, ...]:
    # Taken from the installed package so that the accepted names can never drift from what
    # MetaWorld can actually build.
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    return tuple(sorted(ALL_V3_ENVIRONMENTS))


def _metaworld_spec(name: str) -> TaskSpec:
    return TaskSpec(
        name=name,
        family="metaworld",
        obs_dim=METAWORLD_OBS_DIM,
        act_dim=METAWORLD_ACT_DIM,
        max_episode_steps=METAWORLD_MAX_EPISODE_STEPS,
        success="MetaWorld's success flag at any step",
    )


def _h1_spec(name: str) -> TaskSpec:
    bar = H1_SUCCESS_BARS[name]
    return TaskSpec(
        name=name,
        family="h1",
        obs_dim=H1_OBS_DIM,
        act_dim=H1_ACT_DIM,
        max_episode_steps=H1_MAX_EPISODE_STEPS,
        success=f"episode return >= {bar:g}",
        success_bar=bar,
    )


def _gym_spec(name: str) -> TaskSpec:
    from sphere_rl.envs.gym_env import gym_task_facts

    obs_dim, act_dim, horizon, threshold = gym_task_facts(name)
    return TaskSpec(
        name=name,
        family="gym",
        obs_dim=obs_dim,
        act_dim=act_dim,
        max_episode_steps=horizon,
        success=f"episode return >= {threshold:g} (the environment's reward_threshold)",
        success_bar=threshold,
    )


def list_benchmarks() -> dict[str, tuple[str, ...]]:
    """Return every named benchmark and its task sequence, in training order."""
    return dict(BENCHMARKS)


def list_tasks(family: Family | None = None) -> list[str]:
    """Return every accepted task name (MetaWorld's 50 v3 tasks, then the H1 tasks).

    Args:
        family: keep only tasks of this family (``"metaworld"`` or ``"h1"``).
    """
    if family not in (None, "metaworld", "h1"):
        raise ValueError(f"unknown task family {family!r}; valid families: metaworld, h1")
    names: list[str] = []
    if family in (None, "metaworld"):
        names += _metaworld_task_names()
    if family in (None, "h1"):
        names += H1_SUCCESS_BARS
    return names


def _unknown(kind: str, name: str, valid: list[str]) -> ValueError:
    closest = difflib.get_close_matches(name, valid, n=1, cutoff=0.0)
    hint = f" Did you mean {closest[0]!r}?" if closest else ""
    return ValueError(f"unknown {kind} {name!r}.{hint} Valid {kind}s: {', '.join(valid)}")


def task_family(task: str) -> Family:
    """The family of a task name, from the name alone (an unknown name counts as MetaWorld;
    :func:`task_spec` rejects it)."""
    if task in H1_SUCCESS_BARS:
        return "h1"
    return "gym" if task.startswith("gym:") else "metaworld"


def task_spec(task: str) -> TaskSpec:
    """Return the :class:`TaskSpec` of ``task``; raises ``ValueError`` for an unknown name."""
    if task in H1_SUCCESS_BARS:
        return _h1_spec(task)
    if task in _metaworld_task_names():
        return _metaworld_spec(task)
    if task.startswith("gym:"):  # any Gymnasium id with Box spaces, e.g. gym:InvertedPendulum-v5
        return _gym_spec(task)
    raise _unknown("task", task, [*list_tasks(), "gym:<Gymnasium id>"])


def task_options(task: str, *, h1_feet: str = "humanoidbench") -> dict[str, Any]:
    """Keyword arguments for :func:`sphere_rl.envs.make_env` / ``make_vector_env`` that carry the
    experiment's environment keys to the families that read them (an empty dict for the others).

    Args:
        task: task name.
        h1_feet: the ``h1_feet`` key: H1's foot collider, ``"humanoidbench"`` or ``"menagerie"``.
    """
    return {"feet": h1_feet} if task_spec(task).family == "h1" else {}


def resolve_tasks(benchmark: str | None = None, tasks: str | list[str] | None = None) -> list[str]:
    """Turn a benchmark name or an explicit task list into the ordered list of task names.

    Args:
        benchmark: a name from :func:`list_benchmarks` (case-insensitive), e.g. ``"cw10"``.
        tasks: task names, as a list or one comma-separated string (``"hammer-v3,push-v3"``).
            Exactly one of ``benchmark`` and ``tasks`` must be given.

    Returns:
        The task sequence in training order; repeats are kept (CW20 visits each task twice).
    """
    if (benchmark is None) == (tasks is None):
        raise ValueError(
            "give exactly one of `benchmark` (one of "
            f"{', '.join(BENCHMARKS)}) or `tasks` (e.g. 'hammer-v3,push-v3')"
        )
    if benchmark is not None:
        key = benchmark.strip().lower()
        if key not in BENCHMARKS:
            raise _unknown("benchmark", benchmark, list(BENCHMARKS))
        return list(BENCHMARKS[key])
    names = tasks.split(",") if isinstance(tasks, str) else list(tasks)
    names = [name.strip() for name in names if name.strip()]
    if not names:
        raise ValueError("`tasks` is empty; give at least one task name, e.g. 'hammer-v3'")
    for name in names:
        task_spec(name)  # raises with the valid names and the closest match
    return names
