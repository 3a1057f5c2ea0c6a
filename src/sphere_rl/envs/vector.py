"""Batched environments behind one contract, whatever runs the simulation.

:class:`VectorTaskEnv` is what the PPO runner talks to. It owns the episode bookkeeping (return,
length, success) and the seeding rule; the simulation itself comes from a *backend*:

* ``backend="metaworld"`` (default): the reference Python environments (MetaWorld's package for
  MetaWorld tasks, ``sphere_rl.envs.h1`` for H1 tasks) batched by Gymnasium's
  ``SyncVectorEnv`` (``vectorization="sync"``, in-process) or ``AsyncVectorEnv``
  (``vectorization="async"``, one subprocess per environment), both in same-step autoreset mode.
* ``backend="envpool"``: envpool's C++ MetaWorld port on a thread pool, for the tasks that passed
  the parity check (:mod:`sphere_rl.envs.envpool_backend`).

Seeding rule: ``reset(seed=s)`` derives one seed per sub-environment from ``s`` with NumPy's
``SeedSequence`` and re-seeds each of them; afterwards the sub-environments only draw from their own
generators, so ``s`` and the actions fully determine every later episode of every sub-environment.

Snapshots: ``get_state()`` captures everything the future of every sub-environment depends on
(physics, episode counters, task/goal state, RNGs) and ``set_state()`` continues from it, so a
checkpoint never has to reset an environment. The reference backends support it for MetaWorld and
H1 tasks; envpool cannot export its state (``supports_state`` is False).
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector.async_vector_env import AsyncState

from sphere_rl.envs.backend import Backend, BackendStep
from sphere_rl.envs.gym_env import GymTaskEnv
from sphere_rl.envs.registry import task_spec
from sphere_rl.vocab import ENV_BACKENDS, VECTORIZATIONS

# metaworld_env, envpool_backend and h1 import mujoco: they are imported inside the functions that
# build their environments, so that ``import sphere_rl.envs`` loads no simulator.
BACKENDS = ENV_BACKENDS  # defined in sphere_rl.vocab, which the configuration validates against
# Task families whose reference environments implement get_state()/set_state().
SNAPSHOT_FAMILIES: frozenset[str] = frozenset({"metaworld", "h1"})


@dataclass
class VecStep:
    """One step of all ``N`` sub-environments (same-step autoreset).

    Attributes:
        obs: ``(N, obs_dim)`` float32; already the first observation of the next episode for the
            sub-environments whose episode ended at this step.
        reward: ``(N,)`` float32.
        terminated: ``(N,)`` bool, the episode reached a terminal state.
        truncated: ``(N,)`` bool, the episode hit its time limit.
        final_obs: ``(N, obs_dim)`` float32, the last observation of the episode that ended where
            ``terminated | truncated``, else equal to ``obs`` (use it to bootstrap truncations).
        episode_return: ``(N,)`` float64, undiscounted return of the ended episode, NaN elsewhere.
        episode_length: ``(N,)`` int64, length of the ended episode, 0 elsewhere.
        episode_success: ``(N,)`` float32, 1.0/0.0 success of the ended episode (at any of its
            steps), NaN elsewhere.
        episode_final_success: ``(N,)`` float32, 1.0/0.0 success flag of the ended episode's
            final step (the release's evaluator reads this one), NaN elsewhere.
    """

    obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_obs: np.ndarray
    episode_return: np.ndarray
    episode_length: np.ndarray
    episode_success: np.ndarray
    episode_final_success: np.ndarray

    @property
    def done(self) -> np.ndarray:
        """``(N,)`` bool, ``terminated | truncated``."""
        return self.terminated | self.truncated


def make_env(task: str, seed: int | None = None, **task_kwargs: Any) -> gym.Env:
    """Build one environment of ``task`` (reference implementation), dispatching on its family.

    Args:
        task: any name from :func:`sphere_rl.envs.list_tasks`.
        seed: seed of the first ``reset()`` that passes none.
        **task_kwargs: family options, e.g. ``layout=`` and ``max_episode_steps=`` for MetaWorld.

    Every environment built here reports ``info["success"]`` (float, sticky within the episode).
    """
    family = task_spec(task).family
    if family == "metaworld":
        from sphere_rl.envs.metaworld_env import MetaWorldTaskEnv

        return MetaWorldTaskEnv(task, seed=seed, **task_kwargs)
    if family == "gym":
        return GymTaskEnv(task, seed=seed, **task_kwargs)
    return _h1_factory()(task, seed=seed, **task_kwargs)


def _h1_factory() -> Any:
    try:
        from sphere_rl.envs.h1 import make_h1_env
    except ImportError as exc:
        raise ValueError(
            "H1 tasks need sphere_rl.envs.h1.make_h1_env, which could not be imported "
            f"({exc}); the HumanoidBench H1 environments are not available in this install"
        ) from exc
    return make_h1_env


def _check_task_kwargs(task: str, task_kwargs: dict[str, Any]) -> None:
    """Raise ``ValueError`` if the task's factory does not accept ``task_kwargs``."""
    family = task_spec(task).family
    if family == "metaworld":
        from sphere_rl.envs.metaworld_env import MetaWorldTaskEnv, check_layout

        factory: Any = MetaWorldTaskEnv
        if "layout" in task_kwargs:
            check_layout(task_kwargs["layout"])
    elif family == "gym":
        factory = GymTaskEnv
    else:
        factory = _h1_factory()
    try:
        inspect.signature(factory).bind(task, seed=None, **task_kwargs)
    except TypeError as exc:
        raise ValueError(f"bad keyword arguments for task {task!r}: {exc}") from exc


def derive_seeds(seed: int, num_envs: int) -> list[int]:
    """One well-separated seed per sub-environment (independent of ``num_envs`` for env ``i``).

    Plain ``seed + i`` would make sub-environment 1 of seed ``s`` replay sub-environment 0 of
    seed ``s + 1``; hashing through ``SeedSequence`` avoids such overlaps between runs.
    """
    words = np.random.SeedSequence(seed).generate_state(num_envs, dtype=np.uint32)
    return [int(w) for w in words]


class _AsyncVectorEnv(gym.vector.AsyncVectorEnv):
    """Gymnasium's AsyncVectorEnv plus :meth:`call_each`: a method call with a different argument
    for every worker (``call`` sends all of them the same one)."""

    def call_each(self, name: str, values: list[Any]) -> tuple[Any, ...]:
        """``env_i.name(values[i])`` in every worker process, through the worker pipes."""
        if len(values) != self.num_envs:
            raise ValueError(f"need one value per environment ({self.num_envs}), got {len(values)}")
        # call_async with one argument per pipe; call_wait collects and re-raises worker errors.
        self._assert_is_running()
        if self._state != AsyncState.DEFAULT:
            raise RuntimeError(f"call_each while a call to {self._state.value} is pending")
        for pipe, value in zip(self.parent_pipes, values, strict=True):
            pipe.send(("_call", (name, (value,), {})))
        self._state = AsyncState.WAITING_CALL
        return self.call_wait()


class _GymnasiumBackend:
    """Reference environments batched by Gymnasium's Sync/AsyncVectorEnv (same-step autoreset)."""

    def __init__(
        self, task: str, num_envs: int, vectorization: str, task_kwargs: dict[str, Any]
    ) -> None:
        # Fail here, with a clear message, rather than inside a worker process.
        _check_task_kwargs(task, task_kwargs)
        env_fns = [functools.partial(make_env, task, **task_kwargs) for _ in range(num_envs)]
        mode = gym.vector.AutoresetMode.SAME_STEP
        if vectorization == "sync":
            self._vec: gym.vector.VectorEnv = gym.vector.SyncVectorEnv(env_fns, autoreset_mode=mode)
        else:
            # forkserver: workers start from a clean interpreter, so a parent that already runs
            # torch threads cannot hand a locked mutex to a forked child.
            self._vec = _AsyncVectorEnv(env_fns, autoreset_mode=mode, context="forkserver")
        self.num_envs = num_envs
        self.single_observation_space = self._vec.single_observation_space
        self.single_action_space = self._vec.single_action_space
        self.supports_state = task_spec(task).family in SNAPSHOT_FAMILIES

    def reset(self, seeds: list[int] | None) -> np.ndarray:
        obs, _ = self._vec.reset(seed=seeds)
        return obs

    def step(self, actions: np.ndarray) -> BackendStep:
        obs, reward, terminated, truncated, infos = self._vec.step(actions)
        done = terminated | truncated
        final_obs = obs.copy()
        success = _step_success(infos, self.num_envs)
        if done.any():
            # Same-step mode: infos describe the new episode; the ended one is under final_*.
            final_success = _step_success(infos["final_info"], self.num_envs)
            for i in np.flatnonzero(done):
                final_obs[i] = infos["final_obs"][i]
                success[i] = final_success[i]
        return BackendStep(obs, reward, terminated, truncated, final_obs, success)

    def get_state(self) -> list[Any]:
        # Same-step autoreset keeps no state in the vector env itself, only in its sub-envs.
        if isinstance(self._vec, _AsyncVectorEnv):
            return list(self._vec.call("get_state"))
        return [env.get_state() for env in self._vec.envs]

    def set_state(self, states: list[Any]) -> None:
        if isinstance(self._vec, _AsyncVectorEnv):
            self._vec.call_each("set_state", states)
        else:
            for env, state in zip(self._vec.envs, states, strict=True):
                env.set_state(state)

    def close(self) -> None:
        self._vec.close()


def _step_success(infos: dict[str, Any], num_envs: int) -> np.ndarray:
    """The per-step success flags in Gymnasium's batched ``infos`` (0 where absent).

    MetaWorld reports its per-step flag as ``step_success`` (``success`` is sticky there); other
    families' ``success`` is already the flag of the step. :class:`VectorTaskEnv` makes the
    episode's success sticky itself, so both give the same ``episode_success``."""
    key = "step_success" if "step_success" in infos else "success"
    flags = np.zeros(num_envs, dtype=np.float32)
    if key in infos:
        flags[:] = np.where(infos["_" + key], infos[key], 0.0)
    return flags


class VectorTaskEnv:
    """``num_envs`` copies of one task behind the runner's contract (see :class:`VecStep`).

    Build it with :func:`make_vector_env`. Attributes: ``task``, ``num_envs``,
    ``single_observation_space``, ``single_action_space``, ``obs_dim``, ``act_dim``.
    """

    def __init__(self, task: str, backend: Backend, seed: int) -> None:
        self.task = task
        self.spec = task_spec(task)
        self._backend = backend
        self.num_envs = backend.num_envs
        self.single_observation_space = backend.single_observation_space
        self.single_action_space = backend.single_action_space
        self.obs_dim = int(self.single_observation_space.shape[0])
        self.act_dim = int(self.single_action_space.shape[0])
        self._seed = seed
        self._seeded = False
        self._started = False
        n = self.num_envs
        self._return = np.zeros(n, dtype=np.float64)
        self._length = np.zeros(n, dtype=np.int64)
        self._success = np.zeros(n, dtype=bool)
        self._obs = np.zeros((n, self.obs_dim), dtype=np.float32)  # the last observations returned

    @property
    def supports_state(self) -> bool:
        """Whether :meth:`get_state` / :meth:`set_state` work with this backend."""
        return self._backend.supports_state

    @property
    def at_episode_start(self) -> bool:
        """True when every sub-environment has just started an episode (no step taken in it)."""
        return self._started and not self._length.any()

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset all sub-environments and return ``(N, obs_dim)`` float32 observations.

        ``seed`` re-seeds everything (the construction seed is used on the first call if none is
        given); ``None`` afterwards continues the sub-environments' random streams.
        """
        if seed is None and not self._seeded:
            seed = self._seed
        seeds = None if seed is None else derive_seeds(seed, self.num_envs)
        obs = self._backend.reset(seeds)
        self._seeded = True
        self._started = True
        self._return[:] = 0.0
        self._length[:] = 0
        self._success[:] = False
        self._obs = np.array(obs, dtype=np.float32)
        return self._obs.copy()

    def step(self, actions: np.ndarray) -> VecStep:
        """Advance every sub-environment by one step; ``actions`` is ``(N, act_dim)``, clipped."""
        if not self._started:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions, dtype=np.float32)
        if actions.shape != (self.num_envs, self.act_dim):
            raise ValueError(
                f"actions must have shape (num_envs, act_dim) = ({self.num_envs}, "
                f"{self.act_dim}), got {actions.shape}"
            )
        out = self._backend.step(np.clip(actions, -1.0, 1.0))
        terminated = np.asarray(out.terminated, dtype=bool)
        truncated = np.asarray(out.truncated, dtype=bool)
        done = terminated | truncated
        self._return += out.reward
        self._length += 1
        step_success = np.asarray(out.step_success) > 0.0
        self._success |= step_success
        episode_return = np.where(done, self._return, np.nan)
        episode_length = np.where(done, self._length, 0).astype(np.int64)
        episode_success = np.where(done, self._success, np.nan).astype(np.float32)
        final_success = np.where(done, step_success, np.nan).astype(np.float32)
        self._return[done] = 0.0
        self._length[done] = 0
        self._success[done] = False
        self._obs = np.array(out.obs, dtype=np.float32)
        return VecStep(
            obs=self._obs.copy(),
            reward=np.asarray(out.reward, dtype=np.float32),
            terminated=terminated,
            truncated=truncated,
            final_obs=np.asarray(out.final_obs, dtype=np.float32),
            episode_return=episode_return,
            episode_length=episode_length,
            episode_success=episode_success,
            episode_final_success=final_success,
        )

    def get_state(self) -> dict[str, Any]:
        """Snapshot of the whole vector environment, to continue it later exactly.

        Holds, per sub-environment, everything its future depends on: MuJoCo's integration state,
        the episode's step count, the task/goal/layout state and every random generator (layouts,
        reset noise); plus this wrapper's episode accumulators (return, length, success) and the
        last observations. Plain picklable data (NumPy arrays, numbers, dicts), safe to put in a
        checkpoint. Given the same actions, an environment restored with :meth:`set_state`
        produces exactly the observations, rewards, ends of episodes and statistics this one
        would have.

        Raises:
            NotImplementedError: the backend cannot export its state (envpool; ``gym:`` tasks).
        """
        self._require_state_support()
        if not self._started:
            raise RuntimeError("call reset() before get_state(): there is no state yet")
        return {
            "task": self.task,
            "num_envs": self.num_envs,
            "envs": self._backend.get_state(),
            "episode_return": self._return.copy(),
            "episode_length": self._length.copy(),
            "episode_success": self._success.copy(),
            "obs": self._obs.copy(),
        }

    def set_state(self, state: dict[str, Any]) -> np.ndarray:
        """Continue from a :meth:`get_state` snapshot instead of resetting; returns the current
        ``(N, obs_dim)`` observations (those the snapshotted environment last returned).

        The snapshot may come from another process and from either vectorization (``sync`` or
        ``async``), but must be of the same task and number of sub-environments.

        Raises:
            ValueError: the snapshot is of another task or number of sub-environments.
            NotImplementedError: the backend cannot load a state (envpool; ``gym:`` tasks).
        """
        self._require_state_support()
        if state["task"] != self.task or state["num_envs"] != self.num_envs:
            raise ValueError(
                f"environment snapshot of {state['task']!r} × {state['num_envs']} cannot be loaded"
                f" into {self.task!r} × {self.num_envs}"
            )
        self._backend.set_state(state["envs"])
        self._return[:] = state["episode_return"]
        self._length[:] = state["episode_length"]
        self._success[:] = state["episode_success"]
        self._obs = np.array(state["obs"], dtype=np.float32)
        self._seeded = self._started = True
        return self._obs.copy()

    def _require_state_support(self) -> None:
        if not self.supports_state:
            raise NotImplementedError(
                f"the {type(self._backend).__name__} of {self.task!r} cannot snapshot its"
                " environments' state"
            )

    def close(self) -> None:
        """Release the simulators (and worker processes or threads)."""
        self._backend.close()

    def __enter__(self) -> VectorTaskEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VectorTaskEnv(task={self.task!r}, num_envs={self.num_envs})"


def resolve_backend(task: str, backend: str) -> str:
    """``"auto"`` picks envpool for the tasks that passed its parity check, the reference
    environments for every other task; other names are returned unchanged."""
    if backend != "auto":
        return backend
    from sphere_rl.envs.envpool_backend import check_envpool_task

    try:
        check_envpool_task(task)
    except ValueError:
        return "metaworld"
    return "envpool"


def make_vector_env(
    task: str,
    num_envs: int = 1,
    seed: int = 0,
    vectorization: str = "sync",
    backend: str = "metaworld",
    **task_kwargs: Any,
) -> VectorTaskEnv:
    """Build ``num_envs`` copies of ``task`` behind the :class:`VectorTaskEnv` contract.

    Args:
        task: any name from :func:`sphere_rl.envs.list_tasks`.
        num_envs: number of sub-environments ``N`` (>= 1).
        seed: seed of the first ``reset()`` that passes none.
        vectorization: ``"sync"`` (in-process) or ``"async"`` (one subprocess per env); ignored by
            the envpool backend, which always runs its own thread pool.
        backend: ``"metaworld"`` (reference Python environments; for H1 tasks, sphere_rl's own),
            ``"envpool"`` (envpool's C++ MetaWorld port, parity-checked tasks only) or ``"auto"``
            (envpool where parity holds, the reference elsewhere).
        **task_kwargs: passed to each environment, e.g. ``layout="fixed"``.
    """
    spec = task_spec(task)
    if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) or num_envs < 1:
        raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
    if vectorization not in VECTORIZATIONS:
        raise ValueError(
            f"unknown vectorization {vectorization!r}; valid: {', '.join(VECTORIZATIONS)}"
        )
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    num_envs = int(num_envs)
    backend = resolve_backend(spec.name, backend)
    if backend == "envpool":
        from sphere_rl.envs.envpool_backend import EnvpoolBackend

        impl: Backend = EnvpoolBackend(spec.name, num_envs, **task_kwargs)
    else:
        impl = _GymnasiumBackend(spec.name, num_envs, vectorization, task_kwargs)
    return VectorTaskEnv(spec.name, impl, seed)
