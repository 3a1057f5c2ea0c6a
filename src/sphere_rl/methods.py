"""Named methods: an architecture, its plug-ins (regularizers and interventions), and how to build
the agent.

``--method`` picks a row of :data:`METHODS`; ``--arch`` and ``--reg`` override its parts, so
combinations such as ``--arch topk_moe --reg sphere`` or ``--arch mlp --reg sphere`` work too.
Plug-ins are the :data:`COMPONENTS` registry (:mod:`sphere_rl.components`); this module checks
their names (:func:`validate_names`) and their settings (:func:`resolve_plugin_settings`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from sphere_rl.algo.hooks import (
    ActorPreparer,
    ActorRegularizer,
    AgentAttacher,
    MinibatchObserver,
    TrainingCallback,
)
from sphere_rl.algo.normalization import RunningMeanStd
from sphere_rl.algo.ppo import PPOAgent
from sphere_rl.components import (
    INTERVENTION,
    PENALTY,
    ComponentSpec,
    Setting,
    checked_settings,
    resolve_settings,
)
from sphere_rl.config import ConfigError, ExperimentConfig, did_you_mean, use_settings_resolver
from sphere_rl.interventions import (
    CChain,
    ContinualBackprop,
    L2Init,
    ParsevalRegularizer,
    ReDo,
    ShrinkPerturb,
)
from sphere_rl.nn import (
    DenseMoEActor,
    DSMoEActor,
    GaussianActor,
    MLPActor,
    MLPCritic,
    TopKMoEActor,
    count_parameters,
    param_matched_width,
    release_width,
)
from sphere_rl.nn.init import initialize_
from sphere_rl.nn.layers import set_layer_norm_eps_
from sphere_rl.regularizers.hooks import SphereRegularizer
from sphere_rl.runtime import LearnerThreads


@dataclass(frozen=True)
class MethodSpec:
    name: str
    arch: str
    reg: str
    description: str
    source: str


METHODS: dict[str, MethodSpec] = {
    m.name: m
    for m in [
        MethodSpec("ppo", "mlp", "none", "PPO with a dense 3×256 actor", "Schulman et al. 2017"),
        MethodSpec(
            "ppo10x",
            "mlp10x",
            "none",
            "PPO, actor and critic widened to int(256·sqrt(10)+0.5) = 810 (release rule)",
            "SPHERE paper's PPO(10x)",
        ),
        MethodSpec(
            "ln",
            "mlp_ln",
            "none",
            "PPO, LayerNorm in actor and critic hidden layers",
            "Ba et al. 2016",
        ),
        MethodSpec("topk_moe", "topk_moe", "none", "Top-K MoE actor (E=10, k=2)", "SPHERE paper"),
        MethodSpec("dense_moe", "dense_moe", "none", "Dense-MoE actor (softmax over all)", "-"),
        MethodSpec(
            "ds_moe",
            "ds_moe",
            "none",
            "DS-MoE: dense training, sparse inference",
            "Pan et al. 2024",
        ),
        MethodSpec(
            "sphere",
            "topk_moe",
            "sphere",
            "Top-K MoE + SPHERE penalty (mode and ρ: the preset's)",
            "Luo et al., ICML 2026",
        ),
        # Plasticity baselines (sphere_rl.interventions, docs/methods.md). Like `ln`, they use the
        # dense actor; `--arch topk_moe` (or dense_moe, ds_moe) applies them to an MoE actor.
        MethodSpec(
            "topk_moe_ln",
            "topk_moe_ln",
            "none",
            "Top-K MoE, LayerNorm in every expert and gate layer",
            "Ba et al. 2016",
        ),
        MethodSpec(
            "pw",
            "mlp",
            "parseval",
            "Parseval regularization + learnable diagonal scales",
            "Chung et al., NeurIPS 2024",
        ),
        MethodSpec(
            "cbp",
            "mlp",
            "cbp",
            "Continual backprop: replace low-utility mature units",
            "Dohare et al., Nature 2024",
        ),
        MethodSpec(
            "cchain",
            "mlp",
            "cchain",
            "C-CHAIN: reduce churn on a reference batch",
            "Tang et al., ICML 2025",
        ),
        MethodSpec(
            "redo",
            "mlp",
            "redo",
            "ReDo: recycle dormant units periodically",
            "Sokar et al., ICML 2023",
        ),
        MethodSpec(
            "snp",
            "mlp",
            "snp",
            "Shrink & Perturb the weights after every update",
            "Ash & Adams, NeurIPS 2020",
        ),
        MethodSpec(
            "l2_init",
            "mlp",
            "l2_init",
            "L2 Init: regularize towards the initial parameters",
            "Kumar et al. 2023",
        ),
    ]
}


# How papers write the names of methods, architectures and plug-ins (LaTeX tables of
# `sphere report`). A name without an entry is shown as it is; `register_method(display_name=...)`
# adds one.
DISPLAY_NAMES: dict[str, str] = {
    "ppo": "PPO", "ppo10x": "PPO (10×)", "ln": "PPO + LayerNorm", "topk_moe": "Top-K MoE",
    "dense_moe": "Dense MoE", "ds_moe": "DS-MoE", "sphere": "SPHERE",
    "topk_moe_ln": "Top-K MoE + LayerNorm", "dense_moe_ln": "Dense MoE + LayerNorm",
    "ds_moe_ln": "DS-MoE + LayerNorm", "pw": "Parseval", "parseval": "Parseval", "cbp": "CBP",
    "cchain": "C-CHAIN", "redo": "ReDo", "snp": "Shrink & Perturb", "l2_init": "L2 Init",
    "mlp": "MLP", "mlp_ln": "MLP + LayerNorm", "mlp10x": "MLP (10×)",
}  # fmt: skip


def display_name(name: str) -> str:
    """``"topk_moe"`` → ``"Top-K MoE"``; a label with a variant keeps it: ``"sphere (rho=0.01)"``
    → ``"SPHERE (rho=0.01)"``; ``+``-joined plug-ins are named one by one."""
    head, sep, rest = name.partition(" (")
    parts = head.split("+")
    shown = " + ".join(DISPLAY_NAMES.get(p, p) for p in parts) if len(parts) > 1 else None
    return (shown or DISPLAY_NAMES.get(head, head)) + sep + rest


def build_actor(arch: str, obs_dim: int, act_dim: int, cfg: ExperimentConfig) -> GaussianActor:
    """Construct the actor named ``arch`` with the configuration's network options."""
    moe_kwargs = {
        "n_experts": cfg.n_experts,
        "top_k": cfg.top_k,
        "hidden": cfg.hidden,
        "temperature": cfg.temperature,
    }
    if arch == "mlp":
        return MLPActor(obs_dim, act_dim, cfg.hidden)
    if arch == "mlp_ln":
        return MLPActor(obs_dim, act_dim, cfg.hidden, layer_norm=True)
    if arch == "mlp10x":
        if cfg.ppo10x_width == "release":
            return MLPActor(obs_dim, act_dim, ppo10x_hidden(cfg.hidden))
        target = count_parameters(TopKMoEActor(obs_dim, act_dim, **moe_kwargs))
        width = param_matched_width(target, obs_dim, act_dim, depth=len(cfg.hidden))
        return MLPActor(obs_dim, act_dim, (width,) * len(cfg.hidden))
    if arch in MOE_ARCHS:
        return MOE_ARCHS[arch](obs_dim, act_dim, **moe_kwargs)
    if arch in MOE_LN_ARCHS:  # Linear → LayerNorm → activation in every expert and gate layer
        return MOE_LN_ARCHS[arch](obs_dim, act_dim, layer_norm=True, **moe_kwargs)
    raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")


def ppo10x_hidden(hidden: tuple[int, ...]) -> tuple[int, ...]:
    """The release's PPO(10x) widths: ``int(w·sqrt(10) + 0.5)`` per layer (256 → 810)."""
    return tuple(release_width(w, 10) for w in hidden)


def build_critic(arch: str, obs_dim: int, cfg: ExperimentConfig) -> MLPCritic:
    """The dense critic that goes with ``arch``.

    As in the release, LayerNorm architectures put LayerNorm in the critic too, and PPO(10x)
    widens the critic like the actor (release rule; the parameter-matched rule keeps the base
    critic, since it matches the actor's size only).
    """
    hidden = cfg.hidden
    if arch == "mlp10x" and cfg.ppo10x_width == "release":
        hidden = ppo10x_hidden(cfg.hidden)
    return MLPCritic(obs_dim, hidden, layer_norm=arch.endswith("_ln"))


MOE_ARCHS = {"topk_moe": TopKMoEActor, "dense_moe": DenseMoEActor, "ds_moe": DSMoEActor}
MOE_LN_ARCHS = {f"{name}_ln": cls for name, cls in MOE_ARCHS.items()}
ARCHS = ("mlp", "mlp_ln", "mlp10x", *MOE_ARCHS, *MOE_LN_ARCHS)

# ``--reg`` names components, joined with "+": one registry, whatever roles each takes (the hooks
# its objects declare, sphere_rl.algo.hooks); `kind` only says how `sphere methods` lists it.
RegularizerFactory = Callable[[ExperimentConfig], ActorRegularizer]
CallbackFactory = Callable[[ExperimentConfig], TrainingCallback]


def _sphere(cfg: ExperimentConfig) -> SphereRegularizer:
    return SphereRegularizer(
        variant=cfg.sphere_variant,
        mode=cfg.sphere_mode,
        coef=cfg.rho,
        pcgrad=cfg.pcgrad,
        gating_ratio=cfg.sphere_gating_ratio,
        gate_scale=cfg.sphere_gate_scale,
    )


COMPONENTS: dict[str, ComponentSpec] = {
    c.name: c
    for c in [
        ComponentSpec(
            "sphere", _sphere, PENALTY,
            "SPHERE penalty on the routing-weighted expert feature Gram", "Luo et al. 2026",
            config_keys=("sphere_mode", "rho", "sphere_variant"),
        ),
        ComponentSpec(
            "parseval", ParsevalRegularizer.from_config, PENALTY,
            "Parseval penalty ‖WWᵀ − sI‖² on hidden weights (actor)", "Chung et al. 2024",
            config_keys=("parseval_coef", "parseval_diag"),
        ),
        ComponentSpec(
            "cchain", CChain.from_config, PENALTY,
            "Churn on a reference batch, adaptive scale (actor)", "Tang et al. 2025",
            config_keys=("cchain_target", "cchain_window"),
        ),
        ComponentSpec(
            "l2_init", L2Init.from_config, PENALTY,
            "λ‖θ − θ₀‖² towards the initial actor", "Kumar et al. 2023",
            config_keys=("l2_init_coef",),
        ),
        ComponentSpec(
            "cbp", ContinualBackprop.from_config, INTERVENTION,
            "Replace lowest-utility mature units (actor, critic)", "Dohare et al. 2024",
            config_keys=("cbp_replacement_rate", "cbp_maturity", "cbp_decay"),
        ),
        ComponentSpec(
            "redo", ReDo.from_config, INTERVENTION,
            "Recycle dormant units every F updates (actor, critic)", "Sokar et al. 2023",
            config_keys=("redo_tau", "redo_period"),
        ),
        ComponentSpec(
            "snp", ShrinkPerturb.from_config, INTERVENTION,
            "Shrink weights and add init-scale noise (actor, critic)", "Ash & Adams 2020",
            config_keys=("sp_shrink", "sp_perturb", "sp_period"),
        ),
    ]
}  # fmt: skip


def _plugin_names(method: Any, reg: Any) -> list[str] | None:
    """The plug-in names of ``reg`` (``None``: the method's), not checked; ``None`` where neither
    is known."""
    spec = METHODS.get(method) if isinstance(method, str) else None
    reg = reg if reg is not None else (spec.reg if spec else None)
    if reg is None:
        return None
    return [r for r in str(reg).split("+") if r and r != "none"]


def name_problems(cfg: ExperimentConfig | Mapping[str, Any]) -> list[str]:
    """Unknown method, architecture and plug-in names in a configuration (an
    :class:`ExperimentConfig` or a dict of its keys; missing keys take their defaults), each with
    the closest valid name. The one check of these names: entry points call it (through
    :func:`validate_names`) before anything is created. (Plug-in settings are checked by
    :func:`build_config`, through :func:`resolve_plugin_settings`.)"""
    values = cfg.to_dict() if isinstance(cfg, ExperimentConfig) else cfg
    method = values.get("method", ExperimentConfig.method)
    arch = values.get("arch")
    problems = []
    spec = METHODS.get(method) if isinstance(method, str) else None
    if spec is None:
        problems.append(did_you_mean("method", method, sorted(METHODS)))
    arch = arch or (spec.arch if spec else None)
    if arch is not None and arch not in ARCHS:
        problems.append(did_you_mean("arch", arch, list(ARCHS)))
    for name in _plugin_names(method, values.get("reg")) or []:
        if name not in COMPONENTS:
            problems.append(did_you_mean("reg", name, ["none", *sorted(COMPONENTS)]))
    return problems


def validate_names(cfg: ExperimentConfig | Mapping[str, Any]) -> None:
    """Raise :class:`~sphere_rl.config.ConfigError` listing :func:`name_problems`, if any."""
    problems = name_problems(cfg)
    if problems:
        raise ConfigError.listing(problems)


def resolve_plugin_settings(
    values: Mapping[str, Any], given: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The plug-in settings of a configuration (``values``: its keys) and the problems of the
    ``given`` ones (:func:`~sphere_rl.components.resolve_settings`): unknown key (with the closest
    one), setting of a plug-in the configuration does not use, wrong type, refused value.
    :func:`~sphere_rl.config.build_config` calls it (installed when this module is imported)."""
    method, reg = values.get("method"), values.get("reg")
    names = _plugin_names(method, reg)
    known = names is not None and isinstance(method, str) and method in METHODS
    known = known and all(n in COMPONENTS for n in names)
    user = f"method {method!r}" + (f" (reg {reg!r})" if reg is not None else "")
    return resolve_settings(COMPONENTS, names if known else None, given, user)


use_settings_resolver(resolve_plugin_settings)


def method_settings(cfg: ExperimentConfig) -> dict[str, Any]:
    """The values of the keys that ``cfg``'s plug-ins read (their ``config_keys``) and of the
    settings they declare, as resolved."""
    _, plugins = resolve_method(cfg)
    built_in = {k: getattr(cfg, k) for name in plugins for k in COMPONENTS[name].config_keys}
    return {**built_in, **dict(cfg.plugin_settings)}


def resolve_method(cfg: ExperimentConfig) -> tuple[str, list[str]]:
    """``(arch, plug-in names)`` after applying ``--arch``/``--reg`` overrides.

    The names are looked up, not checked (:func:`validate_names` did that before the run was
    created); a name that is not registered raises :class:`~sphere_rl.config.ConfigError` from
    the same check."""
    spec = METHODS.get(cfg.method)
    arch = cfg.arch or (spec.arch if spec else "")
    regs = _plugin_names(cfg.method, cfg.reg) or []
    if spec is None or arch not in ARCHS or not all(r in COMPONENTS for r in regs):
        validate_names(cfg)
    return arch, regs


def build_agent(cfg: ExperimentConfig, obs_dim: int, act_dim: int) -> PPOAgent:
    """A fresh PPO agent for ``cfg`` (the torch RNG must be seeded by the caller).

    Each plug-in takes every role whose hook it declares (:mod:`sphere_rl.algo.hooks`): L2 Init
    and C-CHAIN penalise but keep state as callbacks, CBP and ReDo observe the minibatches and
    edit the networks as callbacks."""
    arch, regs = resolve_method(cfg)
    actor = build_actor(arch, obs_dim, act_dim, cfg)
    critic = build_critic(arch, obs_dim, cfg)
    for network in (actor, critic):  # before plug-ins record initial weights or add layers
        initialize_(network, cfg.init)
        set_layer_norm_eps_(network, cfg.layer_norm_eps)
    plugins = [COMPONENTS[name].factory(cfg) for name in regs]
    for plugin in plugins:  # structural changes (e.g. Parseval's diagonal layers) before optimisers
        if isinstance(plugin, ActorPreparer):
            plugin.prepare_actor(actor)
    normalizer = RunningMeanStd((obs_dim,)) if cfg.norm_obs else None
    agent = PPOAgent(
        actor,
        critic,
        cfg,  # an ExperimentConfig is a PPOConfig
        normalizer=normalizer,
        regularizers=[p for p in plugins if isinstance(p, ActorRegularizer)],
        callbacks=[p for p in plugins if isinstance(p, TrainingCallback)],
        device=cfg.device,
        observers=[p for p in plugins if isinstance(p, MinibatchObserver)],
    )
    if cfg.device == "cpu":
        agent.learner_threads = LearnerThreads(cfg.torch_threads or torch.get_num_threads())
    for plugin in plugins:  # bind to the built agent (unit views, initial parameters, ...)
        if isinstance(plugin, AgentAttacher):
            plugin.attach(agent)
    return agent


# ----------------------------------------------------------------------------- plug-in API
# Names end up in run-directory names, comma-separated sweep axes and "+"-joined --reg values.
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-.")


def _check_new_name(kind: str, name: str, taken: set[str], overwrite: bool) -> None:
    if not name or not set(name) <= _NAME_CHARS or name == "none":
        raise ValueError(
            f"{kind} name must be lower-case letters, digits, '_', '-' or '.' (not 'none'),"
            f" got {name!r}"
        )
    if name in taken and not overwrite:
        raise ValueError(
            f"{kind} {name!r} is already registered; pass overwrite=True to replace it"
        )


def register_method(
    name: str,
    arch: str,
    reg: str = "none",
    description: str = "",
    source: str = "-",
    *,
    overwrite: bool = False,
    display_name: str = "",
) -> MethodSpec:
    """Make ``--method name`` (and ``ExperimentConfig(method=name)``) an architecture + plug-ins.

    Args:
        name: the method's name, as used on the command line and in run-directory names.
        arch: one of :data:`ARCHS`.
        reg: ``"none"`` or ``+``-joined plug-in names (built-in or registered before).
        description, source: shown by ``sphere methods``.
        overwrite: replace an existing method of the same name instead of refusing.
        display_name: how LaTeX tables name it (e.g. ``"My MoE"``); default: ``name``.

    Returns:
        The registered :class:`MethodSpec`.

    Raises:
        ValueError: on a malformed or taken name, an unknown architecture or plug-in.
    """
    _check_new_name("method", name, set(METHODS), overwrite)
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    unknown = [r for r in _plugin_names(None, reg) or [] if r not in COMPONENTS]
    if unknown:
        raise ValueError(f"unknown plug-in(s) {unknown} in reg {reg!r}; register them first")
    spec = MethodSpec(name, arch, reg, description or f"{arch} + {reg}", source)
    METHODS[name] = spec
    if display_name:
        DISPLAY_NAMES[name] = display_name
    return spec


def _register_component(
    kind: str,
    name: str,
    factory: Callable[[ExperimentConfig], Any],
    description: str,
    source: str,
    settings: Mapping[str, Setting] | None,
    overwrite: bool,
) -> ComponentSpec:
    _check_new_name("plug-in", name, set(COMPONENTS), overwrite)
    spec = ComponentSpec(
        name,
        factory,
        kind,
        description or "(registered plug-in)",
        source,
        settings=checked_settings(name, settings or {}),
    )
    COMPONENTS[name] = spec
    return spec


def register_regularizer(
    name: str,
    factory: RegularizerFactory,
    description: str = "",
    source: str = "-",
    *,
    settings: Mapping[str, Setting] | None = None,
    overwrite: bool = False,
) -> ComponentSpec:
    """Make ``--reg name`` add a penalty to the actor's loss.

    Args:
        name: the plug-in's name (combine with others using ``+``).
        factory: ``factory(cfg) -> ActorRegularizer``, called once per agent built; the object has
            ``name``, ``mode`` (``fixed``/``loss``/``grad``), ``coef``, ``pcgrad`` and
            ``penalty(output, obs, agent) -> scalar tensor`` (:class:`~sphere_rl.algo.hooks.ActorRegularizer`).
            It takes every other role whose hook it declares (:mod:`sphere_rl.algo.hooks`): a
            :class:`~sphere_rl.algo.hooks.TrainingCallback` subclass gets the callback hooks and
            its ``state_dict`` is checkpointed too.
        description, source: shown by ``sphere methods``.
        settings: the plug-in's own hyper-parameters, ``{key: Setting(default, ...)}``; a
            configuration gives them as ``"<name>.<key>"`` and the factory reads them with
            ``cfg.plugin_setting(name, key)``.
        overwrite: replace an existing plug-in of the same name instead of refusing.

    Raises:
        ValueError: on a malformed or taken name, or a malformed setting.
    """
    return _register_component(PENALTY, name, factory, description, source, settings, overwrite)


def register_intervention(
    name: str,
    factory: CallbackFactory,
    description: str = "",
    source: str = "-",
    *,
    settings: Mapping[str, Setting] | None = None,
    overwrite: bool = False,
) -> ComponentSpec:
    """Make ``--reg name`` act on the networks through :class:`~sphere_rl.algo.hooks.TrainingCallback`
    hooks (after each optimiser step, at task starts), as CBP, ReDo and Shrink & Perturb do.

    Args:
        name: the plug-in's name (combine with others using ``+``).
        factory: ``factory(cfg) -> TrainingCallback``, called once per agent built. It takes every
            other role whose hook it declares (:mod:`sphere_rl.algo.hooks`):
            ``observe_minibatch(output, obs, agent)`` sees each minibatch before the update,
            ``prepare_actor(actor)`` runs before the optimisers exist, ``attach(agent)`` after.
        description, source: shown by ``sphere methods``.
        settings, overwrite: as for :func:`register_regularizer`.

    Raises:
        ValueError: on a malformed or taken name, or a malformed setting.
    """
    return _register_component(
        INTERVENTION, name, factory, description, source, settings, overwrite
    )
