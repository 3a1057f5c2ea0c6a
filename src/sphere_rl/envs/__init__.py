"""Environments: the benchmark registry, single environments and the vectorised contract.

The names below are everything the runner needs::

    from sphere_rl.envs import make_vector_env, resolve_tasks

    for task in resolve_tasks("cw10"):
        envs = make_vector_env(task, num_envs=8, seed=0)
        obs = envs.reset(seed=0)                # (8, 39) float32
        step = envs.step(actions)               # VecStep, same-step autoreset

Simulator packages (metaworld, mujoco, envpool) are imported only when an environment is built.
"""

from sphere_rl.envs.registry import (
    BENCHMARKS,
    TaskSpec,
    list_benchmarks,
    list_tasks,
    resolve_tasks,
    task_spec,
)
from sphere_rl.envs.vector import (
    BACKENDS,
    VECTORIZATIONS,
    VecStep,
    VectorTaskEnv,
    make_env,
    make_vector_env,
)

__all__ = [
    "BACKENDS",
    "BENCHMARKS",
    "VECTORIZATIONS",
    "TaskSpec",
    "VecStep",
    "VectorTaskEnv",
    "list_benchmarks",
    "list_tasks",
    "make_env",
    "make_vector_env",
    "resolve_tasks",
    "task_spec",
]
