"""Experiment configuration: one flat, validated dataclass, presets, and the merge rules.

Resolution order: dataclass defaults ← preset ← explicit overrides (CLI flags or a dict). Every
problem in a configuration is reported at once, before anything starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sphere_rl.vocab import (
    ENV_BACKENDS,
    EVAL_PROTOCOLS,
    FOOT_COLLIDERS,
    GATE_SCALES,
    INIT_SCHEMES,
    PPO10X_WIDTHS,
    PROTOCOLS,
    SPHERE_MODES,
    SPHERE_VARIANTS,
    VECTORIZATIONS,
)


class ConfigError(ValueError):
    """An invalid configuration; the message lists every problem found, and ``problems`` holds
    them one by one when the error was made by :meth:`listing` (else it is empty)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])

    @classmethod
    def listing(cls, problems: list[str]) -> ConfigError:
        """``invalid configuration:`` then one ``  - problem`` line each."""
        return cls("invalid configuration:\n  - " + "\n  - ".join(problems), problems)


# The values of PPOConfig's own name-valued keys (sphere_rl.algo.ppo reads them from here).
LR_SCHEDULES: tuple[str, ...] = ("linear", "constant", "kl_adaptive")
LR_PROGRESS: tuple[str, ...] = ("after_rollout", "before_rollout")
KL_ADAPT_EVERY: tuple[str, ...] = ("minibatch", "epoch")
ADAM_KERNELS: tuple[str, ...] = ("foreach", "fused")


@dataclass(frozen=True)
class PPOConfig:
    """PPO's settings and its learning-rate schedules: the one definition, which
    :class:`ExperimentConfig` extends and :class:`~sphere_rl.algo.ppo.PPOAgent` reads.

    Schedules (all restart at each task, as in the release):

    * ``linear``: ``lr`` → ``lr_final`` over the task's iterations.
    * ``constant``: ``lr``.
    * ``kl_adaptive``: starts at ``lr``; after every minibatch (``kl_adapt_every="minibatch"``, the
      release's rule) or every epoch (mean KL, ``"epoch"``) the approximate KL measured before the
      update divides the rate by 1.5 above ``2·target_kl`` and multiplies it by 1.5 below
      ``target_kl/2``, clipped to ``[1e-5, 1e-2]``. No linear decay is applied.
    """

    lr: float = 3e-4
    lr_final: float = 1e-4
    lr_schedule: str = "linear"  # "linear" | "constant" | "kl_adaptive"
    # When ``linear`` reads the task's progress: "after_rollout" (the release: steps done once the
    # iteration's rollout is in, so the first iteration already decays) or "before_rollout"
    # (iteration / iterations, this project's rule before the second audit).
    lr_progress: str = "after_rollout"
    target_kl: float = 0.03  # used by "kl_adaptive"
    kl_adapt_every: str = "minibatch"  # "minibatch" (release) | "epoch"
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5  # value loss = vf_coef · MSE (the release's; no extra 1/2)
    max_grad_norm: float = 0.5
    update_epochs: int = 10
    minibatch_size: int = 256
    norm_adv: bool = True
    # Std of the minibatch advantages: 0 is the release's population std (jnp.std), 1 the sample
    # std (torch.std's default; this project's rule before the second audit).
    adv_std_ddof: int = 0
    # LayerNorm's ε in the ``*_ln`` networks: Flax's 1e-6 (the release) or PyTorch's 1e-5 (this
    # project before the second audit).
    layer_norm_eps: float = 1e-6
    # Adam's kernels: "fused" (in place, no temporaries) is the fastest; "foreach" gives numbers
    # bit-identical to PyTorch's per-parameter loop (fused differs from it by float32 rounding).
    adam_kernel: str = "fused"


@dataclass(frozen=True)
class ExperimentConfig(PPOConfig):
    """Everything one run needs: :class:`PPOConfig`'s keys first, then the experiment's."""

    # What to run
    benchmark: str | None = "cw10"
    tasks: tuple[str, ...] | None = None  # overrides the benchmark's sequence
    protocol: str = "crl"  # "crl": one agent through the sequence; "rl": fresh agent per task
    method: str = "sphere"
    arch: str | None = None  # None: the method's architecture
    reg: str | None = None  # None: the method's regularizer; "none" disables it
    seed: int = 0
    # Networks
    hidden: tuple[int, ...] = (256, 256, 256)
    n_experts: int = 10
    top_k: int = 2
    temperature: float = 1.0
    # "release": Flax's lecun_normal + zero biases on every layer, as the authors' code (nn/init.py);
    # "orthogonal": CleanRL/SB3's orthogonal init (√2 hidden, 0.01 policy/gate heads).
    init: str = "release"
    # SPHERE
    rho: float = 1e-3  # SPHERE's coef: ρ in loss/grad mode, λ in fixed (regularizers/combine.py)
    sphere_mode: str = "grad"
    sphere_variant: str = "last"
    pcgrad: bool = False
    sphere_gating_ratio: float = 0.0  # ratio r of the gate penalty added to the feature penalty
    # "own": the gate penalty has its own scale from r in sphere_mode, as in the release; "shared":
    # r·L_gate is folded into the feature penalty and scaled with it by rho.
    sphere_gate_scale: str = "own"
    # Networks: how PPO(10x) widens (release: int(w·sqrt(10) + 0.5) for actor and critic)
    ppo10x_width: str = "release"
    # Rollouts and the continual protocol (the PPO update's keys are PPOConfig's)
    steps_per_task: int = 1_000_000
    num_envs: int = 8
    num_steps: int = 2048
    norm_obs: bool = True
    # CRL task boundary: carry the Adam moments (release) or reset them; the LR always restarts.
    carry_optimizer: bool = True
    # Environments
    env_backend: str = "metaworld"
    vectorization: str = "sync"
    # H1 foot collider: HumanoidBench's 30 cm × 3 cm sole, or Menagerie's ankle mesh (envs/h1/model.py).
    h1_feet: str = "humanoidbench"
    # Evaluation, diagnostics, checkpoints
    eval_interval: int = 100_000
    eval_episodes: int = 10
    # How each evaluated task is evaluated. "release": the authors' evaluator, eval_episodes over 2
    # envs run back to back, each task's eval envs seeded once and continued (not re-seeded) by
    # every later evaluation, success read at an episode's final step. "project": eval_episodes
    # envs re-seeded identically at every evaluation, one episode each, success at any step. Both
    # evaluate the current and every seen task (crl), which the forgetting metrics need.
    eval_protocol: str = "release"
    diag_interval: int = 100_000
    diag_samples: int = 256
    diag_entk: bool = True
    # Also diagnose on one probe batch fixed for the whole run (an equal share of every task's
    # probe states), logged under "fixed/…", so curves are comparable across task boundaries.
    diag_fixed_probe: bool = False
    checkpoint_interval: int = 100_000
    device: str = "cpu"
    # Intra-op threads for torch; 0 keeps torch's default. One thread is fastest for PPO-sized
    # networks on CPU; with more, each minibatch update runs at whichever of 1 and this many
    # threads measures faster (sphere_rl.runtime.LearnerThreads), rollouts and diagnostics at this.
    torch_threads: int = 1
    # Plasticity interventions (sphere_rl.interventions, docs/methods.md). Defaults come from each
    # method's paper or its authors' code; "updates" count PPO minibatch optimiser steps.
    parseval_coef: float = 1e-3  # Chung et al. 2024: λ at width 64, scaled by (64/width)² per layer
    parseval_diag: bool = True  # their MetaWorld setting: learnable per-unit scales
    cbp_replacement_rate: float = 1e-4  # Dohare et al. 2024 (PPO): per mature unit and update
    cbp_maturity: int = 10_000  # updates a unit is protected after (re)initialisation
    cbp_decay: float = 0.99  # running-average decay of the contribution utility
    cchain_target: float = 0.05  # Tang & Berseth 2025 (PPO, DMC): churn loss / policy loss target
    cchain_window: int = 100  # iterations averaged in C-CHAIN's adaptive scale
    redo_tau: float = 0.1  # Sokar et al. 2023: dormant if normalised mean |activation| <= tau
    redo_period: int = 1000  # updates between two recyclings
    sp_shrink: float = 0.9999997  # Chung et al. 2024's S&P: 1 − lr·wd, lr = 3e-4, wd = 1e-3
    sp_perturb: float = 1e-3  # noise, in units of each weight matrix's initialisation scale
    sp_period: int = 1  # updates between shrink-and-perturb steps; 0: once at each task boundary
    l2_init_coef: float = 1e-2  # Kumar et al. 2023: λ in λ‖θ − θ₀‖²
    intervene_on_critic: bool = True  # CBP, ReDo and S&P also act on the critic, as in their papers
    preset: str | None = None
    # The settings plug-ins declare (sphere_rl.components.Setting), as sorted
    # ("<plug-in>.<key>", value) pairs: every setting of the plug-ins in use, given or default.
    # In a configuration dict (to_dict, config.json, --config, KEY=VALUE) each is a key of its own.
    plugin_settings: tuple[tuple[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        values = {
            f.name: _jsonable(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if f.name != "plugin_settings"
        }
        return {**values, **dict(self.plugin_settings)}

    def plugin_setting(self, plugin: str, key: str) -> Any:
        """The value of plug-in ``plugin``'s setting ``key``, e.g. ``("feature_decay", "coef")``.

        Raises:
            KeyError: the configuration holds no such setting (``plugin`` is not in use, or the
                configuration was not made by :func:`build_config`, which fills in defaults).
        """
        name = f"{plugin}.{key}"
        for setting, value in self.plugin_settings:
            if setting == name:
                return value
        raise KeyError(f"no plug-in setting {name!r} in this configuration")

    @property
    def steps_per_iteration(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def iterations_per_task(self) -> int:
        return max(1, self.steps_per_task // self.steps_per_iteration)


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


PRESETS: dict[str, dict[str, Any]] = {
    # MetaWorld: the release's base configuration (the paper's MetaWorld values were not
    # published): 1M steps/task, 8 envs × 2048 steps, linear LR, no observation normalisation,
    # SPHERE in loss mode with ρ = 0.05.
    "cw10": {
        "benchmark": "cw10",
        "steps_per_task": 1_000_000,
        "num_envs": 8,
        "num_steps": 2048,
        "minibatch_size": 256,
        "update_epochs": 10,
        "lr": 3e-4,
        "lr_final": 1e-4,
        "lr_schedule": "linear",
        "norm_obs": False,
        "sphere_mode": "loss",
        "rho": 0.05,
        "carry_optimizer": True,
    },
    # CW20 is CW10 twice: the same settings ("benchmark" set below).
    "cw20": {},
    # The release's HumanoidBench setting: 10M steps/task, 128 envs × 16 steps, KL-adaptive LR.
    "hb5": {
        "benchmark": "hb5",
        "steps_per_task": 10_000_000,
        "num_envs": 128,
        "num_steps": 16,
        "minibatch_size": 64,
        "update_epochs": 10,
        "lr": 3e-4,
        "lr_schedule": "kl_adaptive",
        "kl_adapt_every": "minibatch",
        "target_kl": 0.03,
        "norm_obs": True,
        "sphere_mode": "grad",
        "rho": 1e-3,
        "carry_optimizer": True,
    },
    # A few-minute CPU run for trying things out and for tests.
    "quick": {
        "steps_per_task": 20_000,
        "num_envs": 4,
        "num_steps": 500,
        "minibatch_size": 250,
        "update_epochs": 4,
        "hidden": (64, 64),
        "n_experts": 4,
        "eval_interval": 10_000,
        "eval_episodes": 2,
        "diag_interval": 10_000,
        "diag_samples": 64,
        "checkpoint_interval": 10_000,
    },
}
PRESETS["cw20"] = {**PRESETS["cw10"], "benchmark": "cw20"}
# A task list without a benchmark or preset gets its family's preset (envs.registry.task_family):
# MetaWorld and Gymnasium tasks cw10's, H1 tasks hb5's. Tasks of families with different presets
# need an explicit preset.
FAMILY_PRESETS: dict[str, str] = {"metaworld": "cw10", "gym": "cw10", "h1": "hb5"}

# Keys with a fixed set of names: each list is defined once, by PPOConfig above or in sphere_rl.vocab
# beside the modules that give the names their meaning. Method, architecture and plug-in names are
# checked where their registries live (sphere_rl.methods.validate_names).
CHOICES: dict[str, tuple[str, ...]] = {
    "protocol": PROTOCOLS,
    "sphere_mode": SPHERE_MODES,
    "sphere_variant": SPHERE_VARIANTS,
    "lr_schedule": LR_SCHEDULES,
    "lr_progress": LR_PROGRESS,
    "kl_adapt_every": KL_ADAPT_EVERY,
    "adam_kernel": ADAM_KERNELS,
    "ppo10x_width": PPO10X_WIDTHS,
    "env_backend": ENV_BACKENDS,
    "vectorization": VECTORIZATIONS,
    "init": INIT_SCHEMES,
    "h1_feet": FOOT_COLLIDERS,
    "sphere_gate_scale": GATE_SCALES,
    "eval_protocol": EVAL_PROTOCOLS,
}
# Integer keys with a fixed set of values (checked like CHOICES).
INT_CHOICES: dict[str, tuple[int, ...]] = {"adv_std_ddof": (0, 1)}
POSITIVE = {
    "steps_per_task", "num_envs", "num_steps", "minibatch_size", "update_epochs", "lr",
    "n_experts", "top_k", "temperature", "eval_interval", "eval_episodes", "diag_interval",
    "diag_samples", "checkpoint_interval", "target_kl", "max_grad_norm", "layer_norm_eps",
}  # fmt: skip
NON_NEGATIVE = {
    "lr_final", "rho", "ent_coef", "vf_coef", "clip_coef", "seed", "torch_threads",
    "sphere_gating_ratio",
}  # fmt: skip
UNIT_INTERVAL = {"gamma", "gae_lambda"}
# Plasticity interventions (the end block of ExperimentConfig).
POSITIVE |= {"cchain_window", "redo_period"}
NON_NEGATIVE |= {
    "parseval_coef", "cbp_maturity", "cchain_target", "redo_tau", "sp_perturb", "sp_period",
    "l2_init_coef",
}  # fmt: skip
UNIT_INTERVAL |= {"cbp_replacement_rate", "cbp_decay", "sp_shrink"}


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin is tuple:
        (item, _) = typing.get_args(annotation)
        return isinstance(value, tuple) and all(_type_ok(v, item) for v in value)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


def _coerce(value: Any) -> Any:
    """Accept JSON lists for tuple fields and comma-separated task strings."""
    return tuple(value) if isinstance(value, list) else value


def build_config(overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """Resolve defaults ← preset ← overrides and validate the result.

    The preset is ``overrides["preset"]`` if given (``None`` given explicitly: no preset), else the
    benchmark's (every benchmark has one; the default benchmark is cw10), else, for a task list,
    the preset of its tasks' family (:data:`FAMILY_PRESETS`). Method, architecture and plug-in
    names are not checked here: see :func:`sphere_rl.methods.validate_names`. Keys with a dot are
    plug-in settings (``"feature_decay.coef"``), checked and completed with their defaults by the
    plug-in registry (:func:`use_settings_resolver`).

    Raises:
        ConfigError: listing every unknown key, wrong type and impossible value.
    """
    overrides = dict(overrides or {})
    given = {k: overrides.pop(k) for k in [k for k in overrides if "." in k]}
    fields = {
        f.name: f for f in dataclasses.fields(ExperimentConfig) if f.name != "plugin_settings"
    }
    hints = typing.get_type_hints(ExperimentConfig)
    problems = []
    for key in overrides:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown key {key!r}{hint}")
    if isinstance(overrides.get("tasks"), str):
        overrides["tasks"] = tuple(t.strip() for t in overrides["tasks"].split(",") if t.strip())
    preset_name, problem = resolve_preset(overrides)
    if problem:
        problems.append(problem)
    preset = PRESETS.get(preset_name, {}) if isinstance(preset_name, str) else {}
    merged = {**preset, **{k: _coerce(v) for k, v in overrides.items() if k in fields}}
    merged["preset"] = preset_name if preset_name in PRESETS else None
    well_typed = {}
    for key, value in merged.items():
        if not _type_ok(value, hints[key]):
            problems.append(f"{key} must be of type {hints[key]}, got {value!r}")
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{key} must be a finite number, got {value!r}")
        else:
            well_typed[key] = value
    # Values are checked on the well-typed keys (others fall back to defaults) so one pass
    # reports everything.
    problems += _value_problems({**_defaults(), **well_typed})
    problems += _name_problems({**_defaults(), **well_typed})
    settings, setting_problems = _settings_resolver({**_defaults(), **well_typed}, given)
    problems += setting_problems
    if problems:
        raise ConfigError.listing(problems)
    return ExperimentConfig(**merged, plugin_settings=tuple(sorted(settings.items())))


# Plug-in settings are declared where plug-ins are registered (sphere_rl.methods), above this
# module, which therefore cannot look them up: the registry installs the function that does
# (use_settings_resolver) when it is imported. Until then no plug-in declares a setting.
SettingsResolver = Callable[[dict[str, Any], dict[str, Any]], tuple[dict[str, Any], list[str]]]


def _no_plugin_settings(
    values: dict[str, Any], given: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    return {}, [f"unknown key {key!r} (no plug-in declares settings)" for key in given]


_settings_resolver: SettingsResolver = _no_plugin_settings


def use_settings_resolver(resolver: SettingsResolver) -> None:
    """Make :func:`build_config` resolve plug-in settings with ``resolver(values, given)``.

    ``values``: the configuration's keys (defaults where not given); ``given``: its
    ``"<plug-in>.<key>"`` keys. It returns ``(settings, problems)``: every setting of the
    configuration's plug-ins (given, or the default) and one line per invalid given key.
    """
    global _settings_resolver
    _settings_resolver = resolver


def resolve_preset(overrides: dict[str, Any]) -> tuple[str | None, str | None]:
    """``(preset name or None, problem or None)``: which preset :func:`build_config` applies."""
    if "preset" in overrides:
        name = overrides["preset"]
        if name is None or name in PRESETS:
            return name, None
        return None, f"preset must be one of {sorted(PRESETS)}, got {name!r}"
    tasks = overrides.get("tasks")
    default = None if tasks else ExperimentConfig.benchmark  # tasks alone: the tasks' preset
    benchmark = overrides.get("benchmark", default)
    if isinstance(benchmark, str):
        key = benchmark.strip().lower()
        return (key, None) if key in PRESETS else (None, None)  # an unknown one is reported apart
    if isinstance(tasks, str):
        tasks = [t.strip() for t in tasks.split(",") if t.strip()]
    if benchmark is not None or not isinstance(tasks, list | tuple) or not tasks:
        return None, None  # wrong types and a missing sequence are reported apart
    from sphere_rl.envs.registry import task_family  # below this module; loads gymnasium

    by_preset: dict[str, list[str]] = {}
    for task in dict.fromkeys(str(t) for t in tasks):
        by_preset.setdefault(FAMILY_PRESETS[task_family(task)], []).append(task)
    if len(by_preset) == 1:
        return next(iter(by_preset)), None
    mix = "; ".join(f"{', '.join(names)} -> {name}" for name, names in by_preset.items())
    return None, (
        f"the tasks need different presets ({mix}) and none is given; give one of"
        f" {', '.join(PRESETS)} as preset (--preset)"
    )


def _defaults() -> dict[str, Any]:
    return ExperimentConfig().__dict__.copy()


def _value_problems(cfg: dict[str, Any]) -> list[str]:
    problems = []
    for key, allowed in (CHOICES | INT_CHOICES).items():
        if cfg[key] not in allowed:
            problems.append(f"{key} must be one of {allowed}, got {cfg[key]!r}")
    for key in sorted(POSITIVE):
        if cfg[key] <= 0:
            problems.append(f"{key} must be > 0, got {cfg[key]!r}")
    for key in sorted(NON_NEGATIVE):
        if cfg[key] < 0:
            problems.append(f"{key} must be >= 0, got {cfg[key]!r}")
    for key in sorted(UNIT_INTERVAL):
        if not 0 <= cfg[key] <= 1:
            problems.append(f"{key} must be in [0, 1], got {cfg[key]!r}")
    if cfg["top_k"] > cfg["n_experts"]:
        problems.append(f"top_k must be <= n_experts={cfg['n_experts']}, got {cfg['top_k']}")
    if not cfg["hidden"] or any(w < 1 for w in cfg["hidden"]):
        problems.append(f"hidden must be a non-empty list of widths >= 1, got {cfg['hidden']!r}")
    if cfg["benchmark"] is None and not cfg["tasks"]:
        problems.append("give a benchmark or a list of tasks")
    batch = cfg["num_envs"] * cfg["num_steps"]
    if cfg["minibatch_size"] > batch > 0:
        problems.append(
            f"minibatch_size ({cfg['minibatch_size']}) exceeds the rollout size num_envs×num_steps"
            f" ({batch})"
        )
    if 0 < cfg["steps_per_task"] < batch:
        problems.append(
            f"steps_per_task ({cfg['steps_per_task']}) is smaller than one rollout"
            f" num_envs×num_steps ({batch})"
        )
    if not re.fullmatch(r"cpu|cuda(:\d+)?", str(cfg["device"])):
        problems.append(f"device must be 'cpu' or 'cuda[:N]', got {cfg['device']!r}")
    return problems


def did_you_mean(kind: str, name: Any, valid: list[str]) -> str:
    """``unknown KIND 'name' (did you mean 'x'?); valid: a, b``."""
    close = difflib.get_close_matches(str(name), valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}; valid: {', '.join(valid)}"


def _name_problems(cfg: dict[str, Any]) -> list[str]:
    """Unknown benchmark and task names, each with the closest valid name."""
    # Imported here: the task registry loads gymnasium (it sits below this module).
    from sphere_rl.envs.registry import BENCHMARKS, list_tasks, task_family, task_spec

    problems = []
    if cfg["tasks"] is None:
        benchmark = cfg["benchmark"]
        if benchmark is not None and str(benchmark).strip().lower() not in BENCHMARKS:
            problems.append(did_you_mean("benchmark", benchmark, list(BENCHMARKS)))
    else:
        # MetaWorld's names come from importing metaworld (~30 MB resident): only when a name
        # could be one of them.
        valid: list[str] = []
        for task in dict.fromkeys(cfg["tasks"]):
            if task.startswith("gym:"):
                try:
                    task_spec(task)
                except ValueError as err:
                    problems.append(str(err))
            elif task_family(task) == "h1":
                continue
            elif task not in (valid := valid or list_tasks()):
                close = difflib.get_close_matches(task, valid, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(
                    f"unknown task {task!r}{hint}; see `sphere envs` for the valid names"
                )
    return problems


# Keys that say where a run executes, not what it computes: a resume may change them (e.g. continue
# a GPU run on CPU), and they take no part in a run's identity (config_hash).
RUNTIME_KEYS = ("device", "torch_threads")


# Keys added after runs were first saved, each with the value under which a run saved without it
# was trained. :func:`saved_config` reads such a run's config.json with that value (so the run
# resumes, evaluates and reports as it was trained), and :func:`config_hash` leaves a key out while
# it holds that value (so the run keeps its identity and directory name).
LEGACY_VALUES: dict[str, Any] = {
    "adv_std_ddof": 1,
    "sphere_gate_scale": "shared",
    "layer_norm_eps": 1e-5,
    "lr_progress": "before_rollout",
    "eval_protocol": "project",
}


def saved_config(saved: dict[str, Any]) -> dict[str, Any]:
    """A config.json as written by any version: keys it predates get their :data:`LEGACY_VALUES`."""
    return {**{k: v for k, v in LEGACY_VALUES.items() if k not in saved}, **saved}


def config_hash(config: dict[str, Any]) -> str:
    """A run's identity: 12 hex digits of SHA-256 over its ``to_dict()`` configuration, without
    :data:`RUNTIME_KEYS` and without keys at their :data:`LEGACY_VALUES`. Stable across processes,
    key order and versions that add keys; any other changed value changes it."""
    identity = {
        k: v
        for k, v in saved_config(config).items()
        if k not in RUNTIME_KEYS and not (k in LEGACY_VALUES and v == LEGACY_VALUES[k])
    }
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def config_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Keys whose values differ between two ``to_dict()`` configurations."""
    keys = sorted(set(old) | set(new))
    return [k for k in keys if old.get(k) != new.get(k)]


__all__ = [
    "CHOICES",
    "FAMILY_PRESETS",
    "PRESETS",
    "RUNTIME_KEYS",
    "ConfigError",
    "ExperimentConfig",
    "PPOConfig",
    "build_config",
    "config_diff",
    "config_hash",
    "did_you_mean",
    "resolve_preset",
    "saved_config",
    "use_settings_resolver",
]
