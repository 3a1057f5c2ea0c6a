"""One MetaWorld v3 task as a reproducible Gymnasium environment.

This wraps MetaWorld's *goal-observable* v3 environments (the SPHERE release's mapping of CW10)
and fixes the three things the raw class does not give a continual-RL run:

* **Time limit.** The raw class has none: it raises on step 501. Episodes here truncate at
  ``max_episode_steps`` (500 by default).
* **Seeding.** The raw class ignores ``reset(seed=...)`` and, by default, draws object and goal
  positions (its "rand_vec") from the *global* ``np.random``. Here every layout is drawn from this
  environment's own generator (``self.np_random``, seeded by ``reset(seed=...)``), through
  MetaWorld's ``seeded_rand_vec`` switch, so a seed reproduces the same episodes in any process and
  global NumPy state is never read.
* **Success.** ``info["success"]`` is sticky: 1.0 from the first step at which MetaWorld reports
  success until the episode ends, so at the final step it is the episode's success.

Two layout modes:

* ``"per_reset"`` (default): a new object/goal layout at every reset, drawn from the seeded
  generator. A policy has to solve the task, not memorise one configuration; this matches the
  randomised-goal protocol of Continual World and of the related CRL code base (see
  ``docs/environments.md``), and it is what the envpool backend does.
* ``"fixed"``: one layout per seed, kept across resets until the next ``reset(seed=...)``;
  this is the behaviour of the raw ``Meta-World/goal_observable`` environment.
"""

from __future__ import annotations

import copy
import functools
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from sphere_rl.envs.registry import METAWORLD_MAX_EPISODE_STEPS, task_spec
from sphere_rl.envs.snapshot import (
    get_physics_state,
    get_rng_state,
    set_physics_state,
    set_rng_state,
)

Layout = Literal["per_reset", "fixed"]
LAYOUTS: tuple[str, ...] = ("per_reset", "fixed")

# MetaWorld's goal-observable constructor seeds the *global* np.random with this value and then
# restores the previous global state; passing a constant keeps construction deterministic and
# leaves the global stream untouched. The layout it draws is discarded at our first reset.
_CONSTRUCTION_SEED = 0

# MetaWorld's reset code places bodies and sites by writing into the *model* (over all 50 v3 tasks,
# body_pos and site_pos change between episodes); quaternions and mocap weld data are kept too, at
# no cost, in case a task moves those.
_MODEL_FIELDS: tuple[str, ...] = ("body_pos", "body_quat", "site_pos", "site_quat", "eq_data")


def check_layout(layout: str) -> None:
    """Raise ``ValueError`` unless ``layout`` is one of :data:`LAYOUTS`."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; valid layouts: {', '.join(LAYOUTS)}")


def _build_raw(task: str) -> Any:
    """Construct MetaWorld's goal-observable environment class for ``task``."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE

    return ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[f"{task}-goal-observable"](seed=_CONSTRUCTION_SEED)


@functools.cache
def _observation_bounds(task: str) -> tuple[np.ndarray, np.ndarray]:
    raw = _build_raw(task)
    try:
        box = raw.sawyer_observation_space
        return box.low.astype(np.float32), box.high.astype(np.float32)
    finally:
        raw.close()


def metaworld_observation_space(task: str) -> gym.spaces.Box:
    """The float32 observation box of ``task`` (39-d), as MetaWorld bounds it internally.

    The raw class's public ``observation_space`` is not refreshed when the goal is made observable
    (its goal bounds stay at 0), so the bounds come from ``sawyer_observation_space`` instead.
    """
    low, high = _observation_bounds(task)
    return gym.spaces.Box(low.copy(), high.copy(), dtype=np.float32)


class MetaWorldTaskEnv(gym.Env[np.ndarray, np.ndarray]):
    """A goal-observable MetaWorld v3 task with a time limit, real seeding and sticky success.

    Observation: ``(39,)`` float32. Action: ``(4,)`` float32 in ``[-1, 1]`` (clipped): end-effector
    xyz displacement and gripper effort. ``terminated`` is always False; ``truncated`` is True at
    step ``max_episode_steps``. ``info["success"]`` is 1.0 once the episode has succeeded and
    ``info["step_success"]`` is MetaWorld's per-step flag.

    Args:
        task: a MetaWorld v3 task name, e.g. ``"hammer-v3"``.
        seed: seed used by the first ``reset()`` if that call gives none (then fresh OS entropy).
        layout: ``"per_reset"`` or ``"fixed"`` (see the module docstring).
        max_episode_steps: episode length before truncation.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (Gymnasium's convention)

    def __init__(
        self,
        task: str,
        seed: int | None = None,
        layout: Layout = "per_reset",
        max_episode_steps: int = METAWORLD_MAX_EPISODE_STEPS,
    ) -> None:
        spec = task_spec(task)
        if spec.family != "metaworld":
            raise ValueError(f"{task!r} is a {spec.family} task, not a MetaWorld task")
        check_layout(layout)
        if max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        self.task = task
        self.layout = layout
        self.max_episode_steps = int(max_episode_steps)
        self._raw = _build_raw(task)
        # Draw layouts from self.np_random (seeded by reset), never from the global np.random.
        self._raw.seeded_rand_vec = True
        # MetaWorld refuses to step past its own horizon; ours is the one that counts.
        self._raw.max_path_length = self.max_episode_steps
        self.observation_space = metaworld_observation_space(task)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(spec.act_dim,), dtype=np.float32)
        self._initial_seed = seed
        self._has_layout = False
        self._elapsed: int | None = None  # None until the first reset
        self._succeeded = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode.

        Args:
            seed: re-seeds the layout generator, and so every later episode.
            options: ``{"layout_vector": v}`` replays the layout ``v`` (see :attr:`layout_vector`)
                instead of drawing one; used to put another simulator's episode on this one.
        """
        if seed is None and not self._has_layout:
            seed = self._initial_seed
        super().reset(seed=seed)
        self._raw.np_random = self.np_random
        replay = (options or {}).get("layout_vector")
        if replay is not None:
            self._raw._last_rand_vec = np.array(replay, dtype=np.float64)
            new_layout = False
        else:
            new_layout = seed is not None or not self._has_layout or self.layout == "per_reset"
        if new_layout:
            # Draw with MetaWorld's own (task-specific, rejection-sampled) reset code. Its reset()
            # runs reset_model twice and some tasks read state left by the first call, so a draw
            # inside reset() would leak a discarded layout into the episode; drawing here and then
            # resetting with the layout frozen builds it exactly as a fixed-layout env would.
            self._raw._freeze_rand_vec = False
            self._raw.reset_model()
            self._raw._freeze_rand_vec = True
        obs, _ = self._raw.reset()
        self._has_layout = True
        self._elapsed = 0
        self._succeeded = False
        return obs.astype(np.float32), {"success": 0.0}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._elapsed is None or self._elapsed >= self.max_episode_steps:
            raise RuntimeError("call reset() before step(): no episode is running")
        # MetaWorld clips the xyz part itself but passes the gripper effort on unclipped.
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        obs, reward, terminated, _, raw_info = self._raw.step(action)
        self._elapsed += 1
        step_success = float(raw_info["success"])
        self._succeeded = self._succeeded or step_success > 0.0
        info = dict(raw_info)
        info["step_success"] = step_success
        info["success"] = float(self._succeeded)
        truncated = self._elapsed >= self.max_episode_steps
        return obs.astype(np.float32), float(reward), bool(terminated), truncated, info

    def get_state(self) -> dict[str, Any]:
        """A snapshot to continue this environment exactly, mid-episode included: MuJoCo's
        integration state, the fields of the model MetaWorld moves at reset, every plain attribute
        of MetaWorld's env object (goal, initial positions, previous observation, step counter,
        layout vector, ...), the layout generator and this wrapper's episode counters."""
        raw = self._raw
        return {
            "elapsed": self._elapsed,
            "succeeded": self._succeeded,
            "has_layout": self._has_layout,
            "initial_seed": self._initial_seed,
            "rng": get_rng_state(self),
            # After a reset MetaWorld draws from our generator; before it, from its own.
            "raw_rng": None if raw._np_random is self._np_random else get_rng_state(raw),
            "raw": _raw_state(raw),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`get_state` snapshot of an environment of the same task."""
        raw = self._raw
        _set_raw_state(raw, state["raw"])
        set_rng_state(self, state["rng"])
        if state["raw_rng"] is None:
            vars(raw)["_np_random"] = self._np_random  # shared, bypassing the seed-resetting setter
        else:
            set_rng_state(raw, state["raw_rng"])
        self._elapsed = state["elapsed"]
        self._succeeded = state["succeeded"]
        self._has_layout = state["has_layout"]
        self._initial_seed = state["initial_seed"]

    @property
    def layout_vector(self) -> np.ndarray:
        """MetaWorld's current object/goal layout vector ("rand_vec"), for tests and debugging."""
        return np.array(self._raw._last_rand_vec, dtype=np.float64)

    @property
    def layout_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of :attr:`layout_vector` (MetaWorld's randomisation box)."""
        space = self._raw._random_reset_space
        return np.array(space.low, dtype=np.float64), np.array(space.high, dtype=np.float64)

    def close(self) -> None:
        self._raw.close()


def _mujoco_arrays(raw: Any) -> dict[str, np.ndarray]:
    """Every array of the simulator's MjData and MjModel, by ``"data.<field>"`` / ``"model.<field>"``."""
    arrays = {}
    for prefix, obj in (("data", raw.data), ("model", raw.model)):
        for name in _array_fields(type(obj)):
            value = getattr(obj, name)
            if isinstance(value, np.ndarray) and value.size:
                arrays[f"{prefix}.{name}"] = value
    return arrays


@functools.cache
def _array_fields(cls: type) -> tuple[str, ...]:
    return tuple(
        name
        for name in dir(cls)
        if not name.startswith("_") and isinstance(getattr(cls, name, None), property)
    )


def _view_of(value: np.ndarray, arrays: dict[str, np.ndarray]) -> tuple | None:
    """Where ``value`` lies inside a simulator array, if it is a view of one: MetaWorld keeps some
    "initial" positions as live views of ``data.xpos``, which its rewards then read every step."""
    address = value.__array_interface__["data"][0]
    for field, base in arrays.items():
        if np.may_share_memory(value, base):
            offset = address - base.__array_interface__["data"][0]
            return field, offset, value.shape, value.strides
    return None


def _is_plain(value: Any) -> bool:
    """Data that can be copied into a snapshot as it is (no simulator, space or generator)."""
    if value is None or isinstance(value, bool | int | float | str | np.generic):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype != object
    if isinstance(value, list | tuple):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def _raw_state(raw: Any) -> dict[str, Any]:
    """Snapshot of MetaWorld's env object: physics, moved model fields, plain attributes (one
    deep copy, so attributes that were the same array stay the same array) and simulator views."""
    arrays = _mujoco_arrays(raw)
    plain, views = {}, {}
    for name, value in vars(raw).items():
        where = _view_of(value, arrays) if isinstance(value, np.ndarray) else None
        if where is not None:
            views[name] = where
        elif _is_plain(value):
            plain[name] = value
    return {
        "physics": get_physics_state(raw.model, raw.data),
        "model": {field: getattr(raw.model, field).copy() for field in _MODEL_FIELDS},
        "attributes": copy.deepcopy(plain),
        "views": views,
    }


def _set_raw_state(raw: Any, state: dict[str, Any]) -> None:
    for field, value in state["model"].items():
        getattr(raw.model, field)[...] = value
    set_physics_state(raw.model, raw.data, state["physics"])
    vars(raw).update(copy.deepcopy(state["attributes"]))
    arrays = _mujoco_arrays(raw)
    for name, (field, offset, shape, strides) in state["views"].items():
        base = arrays[field]
        vars(raw)[name] = np.ndarray(shape, base.dtype, buffer=base, offset=offset, strides=strides)
