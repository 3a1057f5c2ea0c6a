"""The names a configuration key may take, for the keys whose owners sit above
:mod:`sphere_rl.config` or import torch, gymnasium or MuJoCo (which the configuration must not).

Each list is defined here once; the module that gives the names their meaning imports it under its
own name (e.g. :data:`sphere_rl.regularizers.combine.MODES` is :data:`SPHERE_MODES`), and
:mod:`sphere_rl.config` validates its keys against the same objects. This module imports nothing.
"""

from __future__ import annotations

# The continual protocol (sphere_rl.continual.runner): one agent through the sequence, or a fresh
# agent per task.
PROTOCOLS: tuple[str, ...] = ("crl", "rl")
# How a penalty joins the policy loss (sphere_rl.regularizers.combine.MODES).
SPHERE_MODES: tuple[str, ...] = ("fixed", "loss", "grad")
# Which features SPHERE penalises (sphere_rl.regularizers.sphere.VARIANTS).
SPHERE_VARIANTS: tuple[str, ...] = ("last", "all_layers", "per_expert", "gate", "gradient_factor")
# How the gate penalty is scaled (sphere_rl.regularizers.hooks.SphereRegularizer.gate_scale).
GATE_SCALES: tuple[str, ...] = ("own", "shared")
# How PPO(10x) widens its networks (sphere_rl.methods.build_actor).
PPO10X_WIDTHS: tuple[str, ...] = ("release", "param_matched")
# Weight initialisation schemes (sphere_rl.nn.init.INIT_SCHEMES).
INIT_SCHEMES: tuple[str, ...] = ("release", "orthogonal")
# Simulator backends and vectorisations (sphere_rl.envs.vector.BACKENDS, VECTORIZATIONS).
ENV_BACKENDS: tuple[str, ...] = ("metaworld", "envpool", "auto")
VECTORIZATIONS: tuple[str, ...] = ("sync", "async")
# H1's foot colliders (sphere_rl.envs.h1.model.FOOT_COLLIDERS).
FOOT_COLLIDERS: tuple[str, ...] = ("humanoidbench", "menagerie")
# How each task is evaluated (sphere_rl.continual.evaluation): the release's 2 envs seeded once, or
# this project's earlier one env per episode, reseeded alike at every evaluation.
EVAL_PROTOCOLS: tuple[str, ...] = ("release", "project")
