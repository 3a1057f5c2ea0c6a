"""Environment throughput against the physics floor.

For one MetaWorld task (every backend) and each H1 task, with uniform random actions:

* ``raw``: bare ``mujoco.mj_step`` replaying *the same transitions* as ``single`` (episode start
  states restored with ``mj_setState``, then the controls and mocap targets the environment applied,
  ``frame_skip`` physics steps each). Physics cost depends on the state (a falling humanoid costs
  more than one lying still), so the floor must be measured on the environment's own trajectory;
* ``single``: one environment from :func:`sphere_rl.envs.make_env` (resets included);
* ``sync x2`` / ``async x2``: :func:`sphere_rl.envs.make_vector_env` with 2 sub-environments;
* ``envpool x1`` / ``envpool x2``: the envpool backend with 1 and 2 threads (MetaWorld only).

Rates are env steps per second of wall-clock time and, for runs inside this process, per second of
this process's CPU time. Ratios to ``raw`` use CPU time where both have it: on a machine shared
with other jobs, wall-clock rates measure the neighbours as much as the code (``async`` runs in
subprocesses, so its ratio is wall-clock). Usage::

    python benchmarks/env_throughput.py            # quick default, about a minute
    python benchmarks/env_throughput.py --steps 5000 --h1-tasks h1-walk
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import mujoco
import numpy as np

from sphere_rl.envs import list_tasks, make_env, make_vector_env

_STATE = mujoco.mjtState.mjSTATE_INTEGRATION


@dataclass
class Rate:
    """Env steps per wall-clock second and per CPU second of this process (None: not measured)."""

    wall: float
    cpu: float | None

    def ratio_to(self, raw: Rate) -> tuple[float, str]:
        if self.cpu is not None and raw.cpu is not None:
            return self.cpu / raw.cpu, "cpu"
        return self.wall / raw.wall, "wall"


def _timed(run: Callable[[], int], in_process: bool = True) -> Rate:
    """Rates of ``run()``, which returns the number of env steps it took."""
    wall, cpu = time.perf_counter(), time.process_time()
    steps = run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return Rate(steps / wall, steps / cpu if in_process else None)


def _physics(env) -> tuple[mujoco.MjModel, mujoco.MjData, int]:
    """The MuJoCo model, data and frame skip behind a sphere_rl single environment."""
    inner = getattr(env, "_raw", None) or env.unwrapped
    return inner.model, inner.data, int(inner.frame_skip)


@dataclass
class _Episode:
    start: np.ndarray  # integration state after reset
    ctrl: np.ndarray  # (T, nu) controls applied at each step
    mocap_pos: np.ndarray  # (T, nmocap, 3)
    mocap_quat: np.ndarray  # (T, nmocap, 4)
    end_qpos: np.ndarray  # state after the last step, to check the replay


def _actions(env, steps: int, seed: int) -> np.ndarray:
    low, high = env.action_space.low, env.action_space.high
    return np.random.default_rng(seed).uniform(low, high, size=(steps, *low.shape))


def _run_env(env, actions: np.ndarray, seed: int, record: bool) -> list[_Episode]:
    """Step ``env`` through ``actions`` (resetting when episodes end); optionally record physics."""
    model, data, _ = _physics(env)
    episodes: list[_Episode] = []
    state = np.empty(mujoco.mj_stateSize(model, _STATE))
    trace: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def begin() -> None:
        if record:
            mujoco.mj_getState(model, data, state, _STATE)
            episodes.append(_Episode(state.copy(), *([None] * 4)))
            trace.clear()

    def end() -> None:
        if record and trace:
            ctrl, pos, quat = map(np.stack, zip(*trace, strict=True))
            episodes[-1].ctrl, episodes[-1].mocap_pos, episodes[-1].mocap_quat = ctrl, pos, quat
            episodes[-1].end_qpos = data.qpos.copy()

    env.reset(seed=seed)
    begin()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if record:
            trace.append((data.ctrl.copy(), data.mocap_pos.copy(), data.mocap_quat.copy()))
        if terminated or truncated:
            end()
            env.reset()
            begin()
    end()
    if record and episodes[-1].ctrl is None:
        episodes.pop()
    return episodes


def _replay(model: mujoco.MjModel, data: mujoco.MjData, frame_skip: int, episodes) -> int:
    steps = 0
    for episode in episodes:
        mujoco.mj_setState(model, data, episode.start, _STATE)
        for ctrl, pos, quat in zip(
            episode.ctrl, episode.mocap_pos, episode.mocap_quat, strict=True
        ):
            data.ctrl[:] = ctrl
            data.mocap_pos[:] = pos
            data.mocap_quat[:] = quat
            mujoco.mj_step(model, data, nstep=frame_skip)
        steps += len(episode.ctrl)
    return steps


def single_and_raw_rates(task: str, steps: int, seed: int = 0) -> tuple[Rate, Rate, float]:
    """Single-env rate, raw-physics rate on the same transitions, and the replay's max qpos error."""
    env = make_env(task)
    actions = _actions(env, steps, seed)
    episodes = _run_env(env, actions, seed, record=True)  # also the warm-up

    def run_env() -> int:
        _run_env(env, actions, seed, record=False)
        return len(actions)

    single = _timed(run_env)
    model, data, frame_skip = _physics(env)
    raw = _timed(lambda: _replay(model, data, frame_skip, episodes))
    # Deterministic physics: replaying the last episode must land where the environment did.
    _replay(model, data, frame_skip, episodes[-1:])
    error = float(np.abs(data.qpos - episodes[-1].end_qpos).max())
    env.close()
    return single, raw, error


def vector_env_rate(task: str, steps: int, num_envs: int = 2, **kwargs) -> Rate:
    envs = make_vector_env(task, num_envs=num_envs, seed=0, **kwargs)
    envs.reset()
    shape = (steps // num_envs, num_envs, envs.act_dim)
    actions = np.random.default_rng(0).uniform(-1, 1, size=shape)
    for a in actions[: max(len(actions) // 10, 1)]:  # warm-up
        envs.step(a)

    def run() -> int:
        for a in actions:
            envs.step(a)
        return len(actions) * num_envs

    rate = _timed(run, in_process=kwargs.get("vectorization") != "async")
    envs.close()
    return rate


def _report(task: str, raw: Rate, rows: list[tuple[str, Rate]], replay_error: float) -> None:
    print(f"{'task':16s} {'runner':12s} {'steps/s wall':>12s} {'steps/CPU-s':>12s}  vs raw")
    for name, rate in [("raw mj_step", raw), *rows]:
        ratio, basis = rate.ratio_to(raw)
        cpu = "-" if rate.cpu is None else f"{rate.cpu:.0f}"
        print(f"{task:16s} {name:12s} {rate.wall:12.0f} {cpu:>12s}  {ratio:.2f} ({basis})")
        task = ""
    # 0 = bit-exact replay. MetaWorld's step also calls mj_forward, which refreshes the solver's
    # warm start, so its replay drifts once contacts amplify 1e-16 differences; the states visited
    # stay of the same kind, which is what the floor needs.
    print(f"{'':16s} (replay's final qpos deviates from the env's by {replay_error:.1e})")


def main() -> None:
    parser = argparse.ArgumentParser(description="Env steps/s against raw mj_step.")
    parser.add_argument("--metaworld-task", default="push-v3")
    parser.add_argument("--h1-tasks", nargs="*", default=None, help="default: all H1 tasks")
    parser.add_argument("--steps", type=int, default=1000, help="env steps per measurement")
    parser.add_argument("--skip-async", action="store_true", help="skip subprocess vectorisation")
    args = parser.parse_args()

    task, steps = args.metaworld_task, args.steps
    single, raw, error = single_and_raw_rates(task, steps)
    rows = [("single", single), ("sync x2", vector_env_rate(task, steps, vectorization="sync"))]
    if not args.skip_async:
        rows.append(("async x2", vector_env_rate(task, steps, vectorization="async")))
    for threads in (1, 2):
        rate = vector_env_rate(task, steps, threads, backend="envpool", num_threads=threads)
        rows.append((f"envpool x{threads}", rate))
    _report(task, raw, rows, error)

    for h1 in list_tasks("h1") if args.h1_tasks is None else args.h1_tasks:
        try:
            single, raw, error = single_and_raw_rates(h1, steps)
        except ValueError as exc:  # the H1 package is missing from this install
            print(f"{h1:16s} skipped: {exc}")
            continue
        rows = [("single", single)]
        if not args.skip_async:
            rows.append(("async x2", vector_env_rate(h1, steps, vectorization="async")))
        _report(h1, raw, rows, error)


if __name__ == "__main__":
    main()
