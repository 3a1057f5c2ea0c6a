"""Gymnasium environment for the H1 tasks, and the factory the task registry dispatches to."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import gymnasium as gym
import mujoco
import numpy as np

from sphere_rl.envs.h1.model import (
    FRAME_SKIP,
    CollisionMode,
    FootCollider,
    load_h1_model,
    shared_physics_model,
)
from sphere_rl.envs.h1.readout import H1Readout
from sphere_rl.envs.h1.render import render_frame
from sphere_rl.envs.h1.tasks import H1TaskSpec, get_task
from sphere_rl.envs.h1.workspace import Workspace, shared_workspace
from sphere_rl.envs.snapshot import (
    StatefulTimeLimit,
    checked_physics_state,
    get_rng_state,
    set_rng_state,
)

# HumanoidBench perturbs every qpos entry (quaternion included) uniformly by this much at reset.
RESET_NOISE = 0.01

# "shared": the process's physics-only model of the task's arena (training, evaluation);
# "private": a private copy of the full visual model (the pre-sharing reference, for checks).
PhysicsModel = Literal["shared", "private"]
PHYSICS_MODELS: tuple[str, ...] = ("shared", "private")


class H1Env(gym.Env[np.ndarray, np.ndarray]):
    """Unitree H1 under position control on one HumanoidBench task.

    * Observation: ``concat(qpos, qvel)`` as float32, 26 + 25 = 51 values (root position included).
    * Action: 19 values in [-1, 1], clipped, then mapped linearly onto each position actuator's
      control range (the joint range), i.e. -1/+1 command the joint limits.
    * One step = 10 physics steps of 2 ms (50 Hz control).
    * ``info``: the reward components, and ``success`` = 1.0 once the episode return so far has
      reached the task's success bar (so on the final step it is the episode's success).

    Time limits are not applied here; :func:`make_h1_env` adds gymnasium's ``TimeLimit``.
    ``get_state()`` / ``set_state()`` snapshot and restore the environment mid-episode.

    By default the environment steps the process's shared physics-only model
    (:func:`~sphere_rl.envs.h1.model.shared_physics_model`) on an ``MjData`` that the model's
    environments take turns on (:mod:`sphere_rl.envs.h1.workspace`), keeping only its integration
    state in between; rendering mirrors the state into a full visual model built on first use
    (:mod:`sphere_rl.envs.h1.render`).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(
        self,
        task: str | H1TaskSpec,
        *,
        collision: CollisionMode = "mesh",
        feet: FootCollider = "humanoidbench",
        reset_noise: float = RESET_NOISE,
        render_mode: str | None = None,
        width: int = 256,
        height: int = 256,
        physics_model: PhysicsModel = "shared",
    ) -> None:
        self.task_spec = task if isinstance(task, H1TaskSpec) else get_task(task)
        if reset_noise < 0:
            raise ValueError(f"reset_noise must be non-negative, got {reset_noise}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"unsupported render_mode {render_mode!r}; valid: {self.metadata['render_modes']}"
            )
        self.render_mode = render_mode
        self.width, self.height = width, height
        self.reset_noise = float(reset_noise)
        self.frame_skip = FRAME_SKIP

        if physics_model not in PHYSICS_MODELS:
            raise ValueError(
                f"unknown physics_model {physics_model!r}; valid: {', '.join(PHYSICS_MODELS)}"
            )
        self.model_options = (self.task_spec.arena, collision, feet)
        self.physics_only = physics_model == "shared"
        if self.physics_only:
            self.model = shared_physics_model(*self.model_options)
            self._private_workspace = None
        else:
            self.model = load_h1_model(*self.model_options)
            self._private_workspace = Workspace(self.model)
        # The environment's simulator state between its turns on the workspace (h1/workspace.py);
        # it starts as a fresh MjData's.
        self.physics_state = self._workspace().initial_state.copy()
        self._nq = self.model.nq
        self._nv = self.model.nv
        self._key_id = self.model.key("qpos0").id

        low, high = self.model.actuator_ctrlrange.T.copy()
        self._ctrl_centre = (high + low) / 2.0
        self._ctrl_half_range = (high - low) / 2.0
        self._action_shape = (self.model.nu,)
        self._action_buffer = np.empty(self.model.nu, dtype=np.float64)

        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(self.model.nu,), dtype=np.float32)
        obs_size = self.model.nq + self.model.nv
        self.observation_space = gym.spaces.Box(
            -np.inf, np.inf, shape=(obs_size,), dtype=np.float32
        )

        self._episode_return = 0.0
        self._pending_seed: int | None = None
        self._renderer: mujoco.Renderer | None = None
        self._visual: tuple[mujoco.MjModel, mujoco.MjData] | None = None  # see h1/render.py

    def _workspace(self) -> Workspace:
        if self._private_workspace is not None:
            return self._private_workspace
        return shared_workspace(self.model)

    def _occupy(self, derived: bool = False) -> Workspace:
        workspace = self._workspace()
        workspace.take(self, self.physics_state, derived)
        return workspace

    @property
    def data(self) -> mujoco.MjData:
        """The ``MjData`` holding this environment's state, derived quantities included (the
        workspace it shares with the other environments of its model; read it before stepping
        another of them, and write to it only before stepping this one)."""
        return self._occupy(derived=True).data

    @property
    def readout(self) -> H1Readout:
        """Reward and termination quantities of this environment's current state."""
        return self._occupy(derived=True).readout

    @property
    def dt(self) -> float:
        """Control period in seconds (0.02)."""
        return self.model.opt.timestep * self.frame_skip

    def seed_next_reset(self, seed: int | None) -> None:
        """Make the next ``reset()`` without an explicit seed use ``seed`` (factory-time seeding)."""
        self._pending_seed = seed
        if seed is not None:
            self.action_space.seed(seed)
            self.observation_space.seed(seed)

    def _observation(self, workspace: Workspace) -> np.ndarray:
        obs = np.empty(self._nq + self._nv, dtype=np.float32)
        obs[: self._nq] = workspace.qpos
        obs[self._nq :] = workspace.qvel
        return obs

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start pose (keyframe ``qpos0``) plus uniform noise on qpos, zero velocity."""
        if seed is None:
            seed, self._pending_seed = self._pending_seed, None
        else:
            self._pending_seed = None
        super().reset(seed=seed)
        workspace = self._occupy()
        mujoco.mj_resetDataKeyframe(self.model, workspace.data, self._key_id)
        if self.reset_noise:
            noise = self.np_random.uniform(-self.reset_noise, self.reset_noise, size=self._nq)
            workspace.qpos += noise
        mujoco.mj_forward(self.model, workspace.data)
        self._episode_return = 0.0
        return self._observation(workspace), {"success": 0.0}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply one 50 Hz action; returns ``(obs, reward, terminated, truncated=False, info)``."""
        if np.shape(action) != self._action_shape:
            raise ValueError(f"action must have shape {self._action_shape}, got {np.shape(action)}")
        a = self._action_buffer
        a[:] = action
        if not np.isfinite(a).all():
            raise ValueError(f"action contains NaN or infinite values: {action}")
        # Two in-place ufuncs: np.clip's Python dispatch costs more than the clipping itself.
        np.maximum(a, -1.0, out=a)
        np.minimum(a, 1.0, out=a)
        np.multiply(a, self._ctrl_half_range, out=a)
        workspace = self._occupy()
        np.add(a, self._ctrl_centre, out=workspace.ctrl)
        mujoco.mj_step(self.model, workspace.data, nstep=self.frame_skip)

        task = self.task_spec
        reward, info = task.compute_reward(workspace.readout)
        self._episode_return += reward
        info["success"] = 1.0 if task.is_success(self._episode_return) else 0.0
        terminated = task.is_terminated(workspace.readout)
        return self._observation(workspace), reward, terminated, False, info

    def get_state(self) -> dict[str, Any]:
        """Everything the next steps and resets depend on: MuJoCo's integration state, the episode
        return so far (success), the reset-noise generator and a pending factory seed."""
        return {
            "physics": self._saved_physics_state().copy(),
            "episode_return": self._episode_return,
            "pending_seed": self._pending_seed,
            "rng": get_rng_state(self),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`get_state` snapshot (of any H1 env of the same task)."""
        physics = checked_physics_state(self.model, state["physics"])
        self._workspace().vacate(self)
        self.physics_state[:] = physics
        self._episode_return = float(state["episode_return"])
        self._pending_seed = state["pending_seed"]
        set_rng_state(self, state["rng"])

    def render(self) -> np.ndarray | None:
        """RGB frame of the current state (``render_mode="rgb_array"``), else ``None``."""
        if self.render_mode != "rgb_array":
            return None
        return render_frame(self, width=self.width, height=self.height)

    def _saved_physics_state(self) -> np.ndarray:
        self._workspace().save(self)
        return self.physics_state

    def close(self) -> None:
        self._workspace().vacate(self)
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self._visual = None


def make_h1_env(
    task: str,
    seed: int | None = None,
    *,
    collision: CollisionMode = "mesh",
    feet: FootCollider = "humanoidbench",
    reset_noise: float = RESET_NOISE,
    render_mode: str | None = None,
    width: int = 256,
    height: int = 256,
    max_episode_steps: int | None = None,
    physics_model: PhysicsModel = "shared",
) -> gym.Env:
    """Build the H1 environment for ``task`` (a key of ``H1_TASKS``), wrapped in ``TimeLimit``
    (with ``get_state``/``set_state`` covering the step count too).

    Options are explicit keywords (not ``**kwargs``) so that a caller can validate a set of
    options against this signature before building environments in worker processes.

    Args:
        task: ``"h1-stand"``, ``"h1-walk"``, ``"h1-run"``, ``"h1-pole"`` or ``"h1-slide"``.
        seed: seeds the first ``reset()`` that passes no seed, and the action/observation spaces;
            same seed and same actions give identical trajectories.
        collision: ``"mesh"`` (HumanoidBench's colliders) or ``"primitive"`` (Menagerie's).
        feet: ``"humanoidbench"`` (HumanoidBench's 30 cm × 3 cm sole, default) or
            ``"menagerie"`` (the collision mode's own ankle colliders).
        reset_noise: half-width of the uniform qpos perturbation at reset.
        render_mode: ``"rgb_array"`` or ``None``.
        width: rendered frame width in pixels.
        height: rendered frame height in pixels.
        max_episode_steps: truncation horizon; default the task's 1000 steps.
        physics_model: ``"shared"`` (default: one physics-only model per process and arena,
            and one ``MjData`` per model and thread that its environments take turns on) or
            ``"private"`` (a private copy of the full visual model and its own ``MjData``, as
            before models were shared; same physics, ~60 MB per env).

    Raises:
        ValueError: for an unknown task name or invalid option values.
    """
    spec = get_task(task)
    max_steps = spec.max_episode_steps if max_episode_steps is None else int(max_episode_steps)
    if max_steps < 1:
        raise ValueError(f"max_episode_steps must be positive, got {max_episode_steps}")
    env = H1Env(
        spec,
        collision=collision,
        feet=feet,
        reset_noise=reset_noise,
        render_mode=render_mode,
        width=width,
        height=height,
        physics_model=physics_model,
    )
    env.seed_next_reset(seed)
    return StatefulTimeLimit(env, max_episode_steps=max_steps)
