"""eval_protocol: the release's evaluator (2 envs × 5 episodes, seeded once, final-step success)
against hand-built environments, its state in checkpoints, and the project's evaluator unchanged."""

from __future__ import annotations

import contextlib
import csv
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import sphere_rl.continual.evaluation as evaluation_module
import sphere_rl.continual.runner as runner_module
import sphere_rl.continual.seeding as seeding_module
from sphere_rl.config import ConfigError, build_config
from sphere_rl.continual.evaluation import evaluate_release, release_episode_targets
from sphere_rl.continual.runner import ContinualRunner
from sphere_rl.continual.seeding import EVAL_STREAM, derive_seed
from sphere_rl.envs import make_env, make_vector_env
from sphere_rl.envs.vector import BackendStep, VectorTaskEnv, _step_success, derive_seeds


class LinearMean(torch.nn.Module):
    """A deterministic policy of exact float32 arithmetic (no transcendental functions), so a
    batch of observations and one observation at a time give bit-identical actions."""

    def __init__(self, act_dim: int) -> None:
        super().__init__()
        self.act_dim = act_dim

    def forward(self, obs: torch.Tensor) -> SimpleNamespace:
        a = self.act_dim
        return SimpleNamespace(mean=obs[:, :a] * 2.0 - obs[:, a : 2 * a])


class StubAgent:
    def __init__(self, act_dim: int) -> None:
        self.actor = LinearMean(act_dim)

    def obs_tensor(self, obs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(obs, dtype=torch.float32)


ITERATION = ContinualRunner._iteration


def _action(obs: np.ndarray, act_dim: int) -> np.ndarray:
    return obs[:act_dim] * np.float32(2.0) - obs[act_dim : 2 * act_dim]


def test_release_splits_episodes_like_evaluate_policy():
    assert release_episode_targets(10, 2) == [5, 5]
    assert release_episode_targets(3, 2) == [1, 2]
    assert release_episode_targets(1, 1) == [1]


def test_release_evaluations_match_two_hand_built_envs_seeded_once():
    """Two consecutive evaluations on one kept env set equal two single MetaWorld envs seeded
    once and stepped by hand: 5 episodes each, then an unseeded reset starts the next evaluation
    (so its start states differ), success read at each episode's final step."""
    task, seed, steps = "reach-v3", 123, 20
    env = make_vector_env(task, num_envs=2, seed=seed, max_episode_steps=steps)
    agent = StubAgent(env.act_dim)
    got = [evaluate_release(agent, env, 10) for _ in range(2)]
    env.close()

    hand = [make_env(task, max_episode_steps=steps) for _ in range(2)]
    env_seeds = derive_seeds(seed, 2)
    expected, starts = [], []
    for k in range(2):
        episodes, first = [], []  # (episode, env, return, final-step success)
        for i, single in enumerate(hand):
            obs, _ = single.reset(seed=env_seeds[i] if k == 0 else None)
            first.append(obs)
            for e in range(5):
                total, done = 0.0, False
                while not done:
                    obs, reward, terminated, truncated, info = single.step(_action(obs, 4))
                    total += reward
                    done = terminated or truncated
                episodes.append((e, i, total, info["step_success"]))
                obs, _ = single.reset()  # the vector env's autoreset
        episodes.sort()  # the order in which they end in the vector env (same lengths)
        returns, successes = [x[2] for x in episodes], [x[3] for x in episodes]
        expected.append({"success": float(np.mean(successes)), "return": float(np.mean(returns))})
        starts.append(np.stack(first))
    assert got == expected
    assert not np.array_equal(starts[0], starts[1])


class ScriptedBackend:
    """Env 0: 2-step episodes, success at its first step only; env 1: 3-step episodes, success
    at the final step of even episodes. Episode ``e`` of env ``i`` pays ``10·i + e`` per step."""

    num_envs, supports_state = 2, False
    single_observation_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
    single_action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
    lengths = (2, 3)

    def __init__(self) -> None:
        self.resets: list[Any] = []
        self.t = np.zeros(2, dtype=int)
        self.episode = np.zeros(2, dtype=int)

    def reset(self, seeds: list[int] | None) -> np.ndarray:
        self.resets.append(seeds)
        self.t[:] = 0
        return np.zeros((2, 2), dtype=np.float32)

    def step(self, actions: np.ndarray) -> BackendStep:
        self.t += 1
        reward = (10.0 * np.arange(2) + self.episode).astype(np.float32)
        success = np.array([self.t[0] == 1, self.t[1] == 3 and self.episode[1] % 2 == 0], float)
        done = self.t == np.array(self.lengths)
        self.t[done], self.episode[done] = 0, self.episode[done] + 1
        obs = np.zeros((2, 2), dtype=np.float32)
        return BackendStep(obs, reward, np.zeros(2, bool), done, obs, success)

    def close(self) -> None:
        pass


def test_release_success_is_the_final_steps_and_extra_episodes_are_not_counted():
    backend = ScriptedBackend()
    env = VectorTaskEnv("reach-v3", backend, seed=7)
    result = evaluate_release(StubAgent(1), env, episodes=4)
    # Env 0: returns 2·0, 2·1, final-step success 0, 0 (its third episode, run while env 1
    # finishes, is not counted); env 1: returns 3·10, 3·11, final-step success 1, 0.
    assert result == {"success": 0.25, "return": (0 + 2 + 30 + 33) / 4}
    evaluate_release(StubAgent(1), env, episodes=4)
    assert backend.resets == [derive_seeds(7, 2), None]  # seeded once, then continued


def test_metaworld_per_step_success_is_read_over_the_sticky_flag():
    infos = {"success": np.array([1.0, 1.0]), "_success": np.array([True, True]),
             "step_success": np.array([0.0, 1.0]), "_step_success": np.array([True, True])}  # fmt: skip
    assert _step_success(infos, 2).tolist() == [0.0, 1.0]
    h1_like = {"success": np.array([1.0, 0.0]), "_success": np.array([True, False])}
    assert _step_success(h1_like, 2).tolist() == [1.0, 0.0]


def test_eval_protocol_is_a_validated_key_defaulting_to_release():
    assert build_config({}).eval_protocol == "release"
    assert build_config({"eval_protocol": "project"}).eval_protocol == "project"
    with pytest.raises(ConfigError, match=r"eval_protocol must be one of \('release', 'project'\)"):
        build_config({"eval_protocol": "current"})


# ------------------------------------------------------------------------------------ runner
RUN = {"benchmark": None, "tasks": "reach-v3", "method": "sphere", "preset": "quick",
       "hidden": [16], "n_experts": 3, "num_envs": 1, "num_steps": 50, "minibatch_size": 50,
       "update_epochs": 2, "steps_per_task": 300, "checkpoint_interval": 50,
       "eval_interval": 100, "eval_episodes": 2, "diag_interval": 10**9, "diag_samples": 8}  # fmt: skip


def _run(overrides: dict | None, run_dir: Path, monkeypatch, crash_at: int | None = None) -> list:
    """Train (``overrides=None``: resume ``run_dir``); returns the start observations of every
    evaluation (the eval envs have 2 sub-environments)."""
    starts: list[np.ndarray] = []

    def instrumented(*args, **kwargs):
        env = make_vector_env(*args, **kwargs)
        if env.num_envs == 2:  # not the diagnostics' probe envs (8)
            reset = env.reset
            env.reset = lambda seed=None: starts.append(reset(seed=seed)) or starts[-1]
        return env

    monkeypatch.setattr(evaluation_module, "make_vector_env", instrumented)

    def crashing(self, env, obs, t, it):
        if it == crash_at:
            raise KeyboardInterrupt
        return ITERATION(self, env, obs, t, it)

    monkeypatch.setattr(ContinualRunner, "_iteration", crashing)
    cfg = None if overrides is None else build_config(overrides)
    with pytest.raises(KeyboardInterrupt) if crash_at is not None else contextlib.nullcontext():
        ContinualRunner.open(cfg, run_dir, show_progress=False).run()
    return starts


def _eval_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "eval.csv") as f:
        return list(csv.DictReader(f))


def test_runner_release_eval_envs_are_seeded_once_and_survive_a_resume(tmp_path, monkeypatch):
    starts = _run(RUN, tmp_path / "straight", monkeypatch)
    # Evaluations at 100 and 200 steps and the task end: one env set, seeded once.
    hand = [make_env("reach-v3") for _ in range(2)]
    seeds = derive_seeds(derive_seed(0, EVAL_STREAM, 0), 2)
    expected = [np.stack([e.reset(seed=s)[0] for e, s in zip(hand, seeds, strict=True)])]
    for _ in range(2):  # one 500-step episode each (autoreset), then the next evaluation's reset
        for e in hand:
            e.reset()
        expected.append(np.stack([e.reset()[0] for e in hand]))
    assert len(starts) == 3
    np.testing.assert_array_equal(np.stack(starts), np.stack(expected))

    # Killed in iteration 5 (after two evaluations), resumed from its checkpoint: identical.
    run_dir = tmp_path / "crashed"
    _run(RUN, run_dir, monkeypatch, crash_at=5)
    payload = torch.load(run_dir / "checkpoints/latest.pt", weights_only=False)
    assert payload["state"]["iteration"] == 5 and set(payload["eval_envs"]) == {0}
    assert len(_run(None, run_dir, monkeypatch)) == 1  # only the task end's evaluation is left
    assert len(_eval_rows(run_dir)) == 3
    assert _eval_rows(run_dir) == _eval_rows(tmp_path / "straight")


def test_runner_project_protocol_reseeds_the_same_envs_every_time(tmp_path, monkeypatch):
    calls = []

    def recorded(agent, task, episodes, seed, backend, **kwargs):
        calls.append((task, episodes, seed))
        return {"success": 0.0, "return": 0.0}

    monkeypatch.setattr(seeding_module, "evaluate", recorded)
    monkeypatch.setattr(runner_module, "evaluate_release", None)  # must not be called
    _run({**RUN, "eval_protocol": "project"}, tmp_path / "run", monkeypatch)
    assert calls == [("reach-v3", 2, derive_seed(0, EVAL_STREAM, 0))] * 3
