"""Does envpool's MetaWorld port behave like the ``metaworld`` package? The evidence, per task.

envpool runs behind the same :class:`~sphere_rl.envs.vector.VectorTaskEnv` contract as the
reference and is compared on four checks. The two draw layouts from different generators, so
checks 2 to 4 put every envpool episode *on the reference*: the reference is reset to the layout
that reproduces envpool's first observation and then driven by the same policy (paired episodes).

1. **Action semantics**: a fixed open-loop action sequence (lift, then sweep in x and y while
   closing and opening the gripper) moves the robot along the same path on both backends: hand xyz
   and gripper observations agree within ``ACTION_TOL``.
2. **Reset states**: every envpool reset observation, after the first *and later* episodes, is
   reproduced within ``RESET_TOL`` by the reference from a layout inside MetaWorld's randomisation
   box. The layout is read off the observation with an affine map fitted on reference resets.
   This catches shapes, observation layout, goal visibility, out-of-range layouts and state that
   leaks from one episode into the next.
3. **Transition and reward function**: on the first step of each paired episode, from the same
   state with the same action, the next observations (current frame and goal) agree within
   ``STEP_TOL`` and the rewards within ``REWARD_RTOL * (1 + |r|)``. "Same state" is up to the
   reset tolerance: where objects settle during reset, envpool's resting pose differs from the
   reference's by up to ~5e-4.
4. **Expert behaviour**: MetaWorld's scripted expert, run for full 500-step episodes (two
   consecutive episodes per sub-environment, so autoreset is exercised), reaches success rates
   within ``SUCCESS_TOL`` of each other, and its episode returns agree on average: the mean paired
   difference is within ``RETURN_RTOL`` of the reference's mean return, or statistically
   indistinguishable from zero (within two standard errors).

Why check 4 compares means rather than each pair: contact-rich episodes are chaotic. The two
simulators agree to about 1e-5 per step once contacts start, and the *reference itself* ends a
peg-unplug-side or push-back episode with a return several times larger or smaller when its layout
is moved by 10 micrometres. Paired returns therefore diverge without any modelling difference; what
must hold is that the port is not biased.

Run ``python -m sphere_rl.envs.parity [TASK ...]`` to print the table kept in
``docs/environments.md``.
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass, field

import numpy as np

from sphere_rl.envs.envpool_backend import EnvpoolBackend
from sphere_rl.envs.metaworld_env import MetaWorldTaskEnv
from sphere_rl.envs.registry import CW10, METAWORLD_MAX_EPISODE_STEPS
from sphere_rl.envs.vector import VectorTaskEnv, make_vector_env

ACTION_TOL = 1e-3
RESET_TOL = 1e-3
STEP_TOL = 1e-3
REWARD_RTOL = 1e-3
SUCCESS_TOL = 0.1
RETURN_RTOL = 0.05

_ROBOT = slice(0, 4)
_CURRENT_FRAME = np.r_[0:18, 36:39]
_FIT_SAMPLES = 40


@dataclass
class ParityResult:
    """Figures of one task's parity check (reference = the metaworld package).

    Per-episode arrays are paired: entry ``i`` of ``ref_*`` replays envpool's episode ``i``.
    """

    task: str
    action_err: float
    reset_err: np.ndarray
    step_err: np.ndarray
    ref_first_reward: np.ndarray
    pool_first_reward: np.ndarray
    ref_returns: np.ndarray
    pool_returns: np.ndarray
    ref_successes: np.ndarray
    pool_successes: np.ndarray
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def episodes(self) -> int:
        return len(self.ref_returns)

    @property
    def reward_err(self) -> float:
        """Largest first-step reward difference, in units of ``1 + |reference reward|``."""
        diff = np.abs(self.pool_first_reward - self.ref_first_reward)
        return float((diff / (1.0 + np.abs(self.ref_first_reward))).max())

    @property
    def median_return_rel_diff(self) -> float:
        diff = np.abs(self.pool_returns - self.ref_returns)
        return float(np.median(diff / np.maximum(np.abs(self.ref_returns), 1e-9)))

    @property
    def mean_return_diff(self) -> tuple[float, float]:
        """Mean paired return difference (envpool - reference) and its standard error."""
        diff = self.pool_returns - self.ref_returns
        return float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff)))

    def evaluate(self) -> ParityResult:
        """Fill :attr:`failures` from the figures (the criteria of the module docstring)."""
        self.failures.clear()
        if self.action_err > ACTION_TOL:
            self.failures.append(f"open-loop robot path differs by {self.action_err:.3g}")
        bad = int((self.reset_err > RESET_TOL).sum())
        if bad:
            self.failures.append(
                f"{bad}/{self.episodes} reset states are not reproducible by the reference "
                f"(max obs error {self.reset_err.max():.3g})"
            )
        if self.step_err.max() > STEP_TOL:
            self.failures.append(f"first-step observations differ by {self.step_err.max():.3g}")
        if self.reward_err > REWARD_RTOL:
            self.failures.append(f"first-step rewards differ by {self.reward_err:.3g} (relative)")
        ref_rate, pool_rate = self.ref_successes.mean(), self.pool_successes.mean()
        if abs(pool_rate - ref_rate) > SUCCESS_TOL:
            self.failures.append(f"expert success {pool_rate:.2f} vs reference {ref_rate:.2f}")
        mean_diff, stderr = self.mean_return_diff
        ref_mean = abs(self.ref_returns.mean())
        if abs(mean_diff) > max(RETURN_RTOL * ref_mean, 2.0 * stderr):
            self.failures.append(
                f"expert mean return differs by {mean_diff:+.0f} ± {stderr:.0f} "
                f"(reference {ref_mean:.0f})"
            )
        return self


@dataclass
class _Episodes:
    """Expert episodes: observations at reset and after one step ``(E, 39)``; first rewards,
    returns and successes ``(E,)``."""

    first_obs: np.ndarray
    second_obs: np.ndarray
    first_reward: np.ndarray
    returns: np.ndarray
    successes: np.ndarray


def _expert():
    from metaworld.policies import ENV_POLICY_MAP

    return ENV_POLICY_MAP


def _open_loop_actions(steps_per_phase: int = 15) -> np.ndarray:
    """``(5 * steps_per_phase, 4)``: lift, +x, -y, -x, +y, toggling the gripper."""
    phases = [(0, 0, 1, -1), (1, 0, 0, 1), (0, -1, 0, -1), (-1, 0, 0, 1), (0, 1, 0, -1)]
    return np.repeat(np.asarray(phases, dtype=np.float32), steps_per_phase, axis=0)


def _open_loop_robot_path(envs: VectorTaskEnv, seed: int) -> np.ndarray:
    """Robot observations (hand xyz, gripper) along the open-loop path, ``(T, N, 4)``."""
    envs.reset(seed=seed)
    path = []
    for action in _open_loop_actions():
        path.append(envs.step(np.tile(action, (envs.num_envs, 1))).obs[:, _ROBOT])
    return np.stack(path)


def _envpool_expert_episodes(envs: VectorTaskEnv, seed: int, episodes_per_env: int) -> _Episodes:
    policy = _expert()[envs.task]()
    obs = envs.reset(seed=seed)
    first, second, first_reward, returns, successes = [obs.copy()], [], [], [], []
    for t in range(episodes_per_env * METAWORLD_MAX_EPISODE_STEPS):
        step = envs.step(np.stack([policy.get_action(o) for o in obs]))
        obs = step.obs
        if t % METAWORLD_MAX_EPISODE_STEPS == 0:  # sub-environments run in lockstep
            second.append(step.final_obs)
            first_reward.append(step.reward.astype(np.float64))
        if step.done.any():
            returns.append(step.episode_return[step.done])
            successes.append(step.episode_success[step.done])
            first.append(obs[step.done])
    # The last batch of first observations belongs to episodes that were never played.
    return _Episodes(
        np.concatenate(first[:-1]),
        np.concatenate(second),
        np.concatenate(first_reward),
        np.concatenate(returns),
        np.concatenate(successes),
    )


class _LayoutReader:
    """Reads MetaWorld's layout vector off a reset observation (affine least-squares fit).

    Layout vectors map affinely to object and goal positions at reset; components that never
    reach the observation are unused by MetaWorld, and the reset check below verifies the result.
    """

    def __init__(self, env: MetaWorldTaskEnv, samples: int = _FIT_SAMPLES, seed: int = 0) -> None:
        obs, layouts = [], []
        env.reset(seed=seed)
        for _ in range(samples):
            obs.append(env.reset()[0])
            layouts.append(env.layout_vector)
        features = self._features(np.asarray(obs))
        self._weights = np.linalg.lstsq(features, np.asarray(layouts), rcond=None)[0]
        self._low, self._high = env.layout_bounds

    @staticmethod
    def _features(obs: np.ndarray) -> np.ndarray:
        return np.c_[np.asarray(obs, dtype=np.float64), np.ones(len(obs))]

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        layout = self._features(obs[None])[0] @ self._weights
        return np.clip(layout, self._low, self._high)


def _paired_reference_episodes(task: str, pool: _Episodes) -> tuple[np.ndarray, _Episodes]:
    """Replay each envpool episode's layout on the reference with the same expert.

    Returns the reference's paired episodes. The first action is envpool's (computed from envpool's
    first observation), so that the first transitions start from the same state and action.
    """
    env = MetaWorldTaskEnv(task, seed=0)
    policy = _expert()[task]()
    read_layout = _LayoutReader(env)
    first_obs, second_obs, first_reward, returns, successes = [], [], [], [], []
    for pool_obs in pool.first_obs:
        obs, _ = env.reset(options={"layout_vector": read_layout(pool_obs)})
        first_obs.append(obs)
        action = policy.get_action(pool_obs)
        rewards, truncated = [], False
        while not truncated:
            obs, reward, _, truncated, info = env.step(action)
            if not rewards:
                second_obs.append(obs)
            rewards.append(reward)
            action = policy.get_action(obs)
        first_reward.append(rewards[0])
        returns.append(float(np.sum(rewards)))
        successes.append(info["success"])
    env.close()
    return _Episodes(*map(np.asarray, (first_obs, second_obs, first_reward, returns, successes)))


def check_parity(
    task: str, num_envs: int = 10, episodes_per_env: int = 2, seed: int = 0
) -> ParityResult:
    """Compare envpool with the reference package on ``task`` (see the module docstring)."""
    ref_envs = make_vector_env(task, num_envs=num_envs, backend="metaworld")
    pool_envs = VectorTaskEnv(task, EnvpoolBackend(task, num_envs, require_parity=False), seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the experts warn about their own gains
        try:
            action_err = float(
                np.abs(
                    _open_loop_robot_path(pool_envs, seed) - _open_loop_robot_path(ref_envs, seed)
                ).max()
            )
            pool = _envpool_expert_episodes(pool_envs, seed, episodes_per_env)
        finally:
            ref_envs.close()
            pool_envs.close()
        ref = _paired_reference_episodes(task, pool)
    return ParityResult(
        task=task,
        action_err=action_err,
        reset_err=np.abs(ref.first_obs - pool.first_obs).max(axis=1),
        # The frame stack (18-35) of the first step repeats the reset state, checked above.
        step_err=np.abs(ref.second_obs - pool.second_obs)[:, _CURRENT_FRAME].max(axis=1),
        ref_first_reward=ref.first_reward,
        pool_first_reward=pool.first_reward,
        ref_returns=ref.returns,
        pool_returns=pool.returns,
        ref_successes=ref.successes,
        pool_successes=pool.successes,
    ).evaluate()


def markdown_table(results: list[ParityResult]) -> str:
    """The parity table of ``docs/environments.md``."""
    lines = [
        "| task | episodes | open-loop err | reset err | 1st-step obs / reward err "
        "| expert success ref / envpool (paired agreement) | mean return ref / envpool "
        "| median paired diff | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        verdict = "pass" if r.passed else "**refused**: " + "; ".join(r.failures)
        agree = float((r.ref_successes == r.pool_successes).mean())
        lines.append(
            f"| {r.task} | {r.episodes} | {r.action_err:.1e} | {r.reset_err.max():.1e} "
            f"| {r.step_err.max():.1e} / {r.reward_err:.1e} "
            f"| {r.ref_successes.mean():.2f} / {r.pool_successes.mean():.2f} ({agree:.0%}) "
            f"| {r.ref_returns.mean():.0f} / {r.pool_returns.mean():.0f} "
            f"| {r.median_return_rel_diff:.1%} | {verdict} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="*", default=list(CW10))
    parser.add_argument("--num-envs", type=int, default=10)
    parser.add_argument("--episodes-per-env", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="print paired episode returns")
    args = parser.parse_args()
    results = []
    for task in args.tasks:
        results.append(check_parity(task, args.num_envs, args.episodes_per_env, args.seed))
        print(markdown_table(results[-1:]).splitlines()[-1], flush=True)
        if args.verbose:
            for name in ("ref_returns", "pool_returns", "reset_err", "step_err"):
                print(f"  {name}: {np.array2string(getattr(results[-1], name), precision=4)}")
    print()
    print(markdown_table(results))


if __name__ == "__main__":
    main()
