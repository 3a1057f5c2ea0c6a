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

import functools
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from sphere_rl.envs.registry import METAWORLD_MAX_EPISODE_STEPS, task_spec

Layout = Literal["per_reset", "fixed"]
LAYOUTS: tuple[str, ...] = ("per_reset", "fixed")

# MetaWorld's goal-observable constructor seeds the *global* np.random with this value and then
# restores the previous global state; passing a constant keeps construction deterministic and
# leaves the global stream untouched. The layout it draws is discarded at our first reset.
_CONSTRUCTION_SEED = 0


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
