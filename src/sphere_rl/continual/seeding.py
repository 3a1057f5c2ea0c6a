"""The one recipe for a run's random streams and the environments built from them.

Every seed a run uses is ``derive_seed(cfg.seed, stream, index[, count])``: one
``numpy.random.SeedSequence`` per stream, so streams are independent of one another and of
neighbouring run seeds.

=================  ====================  ==========================================================
stream             keys                  seeds
=================  ====================  ==========================================================
``AGENT_STREAM``   ``t`` (rl) or ``0``   torch's generator before an agent is built (rl: one per
                   (crl)                 task; crl: one agent for the sequence)
``ENV_STREAM``     ``t[, it]``           task ``t``'s training environments, at the task start and
                                         (``it``) where envs that cannot snapshot are re-seeded
``EVAL_STREAM``    ``j[, n]``            task ``j``'s evaluation environments, at their first
                                         evaluation and (``n`` earlier ones) where the release's
                                         evaluator re-seeds envs that cannot snapshot
``PROBE_STREAM``   ``j``                 task ``j``'s probe batch for the diagnostics
=================  ====================  ==========================================================

The runner (``sphere train``, and so the sweep and the demo), ``sphere eval`` and ``sphere entk``
build their environments here, so that the same run configuration always gives the same
environments, evaluation episodes and probe states.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sphere_rl.algo.ppo import PPOAgent
from sphere_rl.config import ExperimentConfig
from sphere_rl.continual.evaluation import evaluate, probe_states, release_eval_env
from sphere_rl.envs import make_vector_env
from sphere_rl.envs.registry import task_options
from sphere_rl.envs.vector import VectorTaskEnv

# Stream identifiers for derive_seed: each random stream of a run has its own key.
AGENT_STREAM, ENV_STREAM, EVAL_STREAM, PROBE_STREAM = 1, 2, 3, 4


def derive_seed(seed: int, *keys: int) -> int:
    """A 31-bit seed for one stream of a run, independent of every other stream."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0] % (2**31 - 1))


def _reseed(cfg: ExperimentConfig, stream: int, index: int, count: int) -> int:
    """The first seed of ``(stream, index)``, or its ``count``-th re-seed (``count > 0``)."""
    keys = (stream, index) if count == 0 else (stream, index, count)
    return derive_seed(cfg.seed, *keys)


def agent_seed(cfg: ExperimentConfig, t: int) -> int:
    """Seed of torch's generator before the agent of task ``t`` is built (crl: one agent)."""
    return derive_seed(cfg.seed, AGENT_STREAM, t if cfg.protocol == "rl" else 0)


def training_env_seed(cfg: ExperimentConfig, t: int, iteration: int = 0) -> int:
    """Seed of task ``t``'s training envs when (re)seeded at ``iteration``: 0 at the task start,
    later where envs that cannot snapshot are checkpointed."""
    return _reseed(cfg, ENV_STREAM, t, iteration)


def eval_seed(cfg: ExperimentConfig, j: int, earlier: int = 0) -> int:
    """Seed of task ``j``'s evaluation envs: at their first evaluation, or (``earlier`` > 0) when
    the release's evaluator re-seeds envs that cannot snapshot after ``earlier`` evaluations."""
    return _reseed(cfg, EVAL_STREAM, j, earlier)


def probe_seed(cfg: ExperimentConfig, j: int) -> int:
    """Seed of task ``j``'s probe batch."""
    return derive_seed(cfg.seed, PROBE_STREAM, j)


def env_options(cfg: ExperimentConfig, task: str) -> dict[str, Any]:
    """The configuration's environment keys that ``task``'s environments read
    (:func:`~sphere_rl.envs.registry.task_options`)."""
    return task_options(task, h1_feet=cfg.h1_feet)


def training_envs(cfg: ExperimentConfig, t: int, task: str) -> VectorTaskEnv:
    """Task ``t``'s ``cfg.num_envs`` training environments, seeded for the task start."""
    return make_vector_env(
        task, cfg.num_envs, seed=training_env_seed(cfg, t), vectorization=cfg.vectorization,
        backend=cfg.env_backend, **env_options(cfg, task),
    )  # fmt: skip


def release_eval_envs(cfg: ExperimentConfig, j: int, task: str) -> VectorTaskEnv:
    """Task ``j``'s evaluation environments for the release's evaluator
    (:func:`~sphere_rl.continual.evaluation.release_eval_env`), seeded at the first reset."""
    return release_eval_env(
        task, cfg.eval_episodes, eval_seed(cfg, j), cfg.env_backend, **env_options(cfg, task)
    )


def evaluate_task(
    agent: PPOAgent, cfg: ExperimentConfig, task: str, episodes: int, seed: int
) -> dict[str, float]:
    """:func:`~sphere_rl.continual.evaluation.evaluate` on ``task``'s environments as ``cfg``
    builds them; the runner passes :func:`eval_seed`, ``sphere eval`` the user's seed."""
    return evaluate(agent, task, episodes, seed, cfg.env_backend, **env_options(cfg, task))


def probe_batch(cfg: ExperimentConfig, j: int, task: str, samples: int) -> np.ndarray:
    """Task ``j``'s ``(samples, obs_dim)`` probe states (:func:`probe_states`); the runner's
    diagnostics and ``sphere entk`` both take their states from here."""
    return probe_states(
        task, samples, probe_seed(cfg, j), env_backend=cfg.env_backend, **env_options(cfg, task)
    )


def run_probe_batch(cfg: ExperimentConfig, tasks: list[str]) -> np.ndarray:
    """One probe batch for the whole run: ``cfg.diag_samples`` states split evenly over every task
    of the sequence, each share drawn from that task's own probe stream."""
    shares = np.diff(np.linspace(0, cfg.diag_samples, len(tasks) + 1).round()).astype(int)
    return np.concatenate(
        [
            probe_batch(cfg, j, task, int(share))
            for j, (task, share) in enumerate(zip(tasks, shares, strict=True))
            if share > 0
        ]
    )


__all__ = [
    "AGENT_STREAM",
    "ENV_STREAM",
    "EVAL_STREAM",
    "PROBE_STREAM",
    "agent_seed",
    "derive_seed",
    "env_options",
    "eval_seed",
    "evaluate_task",
    "probe_batch",
    "probe_seed",
    "release_eval_envs",
    "run_probe_batch",
    "training_env_seed",
    "training_envs",
]
