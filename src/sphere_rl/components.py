"""The plug-in contract's declarations: a component (what ``--reg`` names) and its own settings.

A component is registered once (:func:`sphere_rl.methods.register_regularizer`,
:func:`~sphere_rl.methods.register_intervention`) with a ``factory(cfg)`` that builds it for each
agent; the object built takes every role whose hook it declares (:mod:`sphere_rl.algo.hooks`).

A component may declare :class:`Setting` s: hyper-parameters of its own, written
``"<component>.<key>"`` in a configuration (``--config`` JSON, ``KEY=VALUE`` on the command line,
``config.json``). :func:`resolve_settings` checks the given ones and fills in the defaults of the
rest, so a run's config.json holds every value its components used.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sphere_rl.config import did_you_mean

SETTING_TYPES: tuple[type, ...] = (bool, int, float, str)  # JSON scalars: hashable, round-trip
_SETTING_KEY = re.compile(r"[a-z][a-z0-9_]*")
# How `sphere methods` lists a component.
PENALTY, INTERVENTION = "actor penalty", "network edit"


@dataclass(frozen=True)
class Setting:
    """One hyper-parameter of a component; its type is the default's (one of
    :data:`SETTING_TYPES`; an int is accepted for a float setting).

    Args:
        default: the value a configuration that does not give one gets (and records).
        help: one line for ``sphere methods``.
        check: ``check(value) -> bool``, true for a valid value (after the type check).
        valid: what ``check`` accepts, for the error message: ``">= 0"`` gives
            ``feature_decay.coef must be >= 0, got -1.0``.
    """

    default: Any
    help: str = ""
    check: Callable[[Any], bool] | None = None
    valid: str = ""


@dataclass(frozen=True)
class ComponentSpec:
    """A registered component.

    ``config_keys`` are the :class:`~sphere_rl.config.ExperimentConfig` keys a built-in component
    reads (``sphere methods`` shows their values); ``settings`` those a component declares itself.
    """

    name: str
    factory: Callable[[Any], Any]  # factory(cfg: ExperimentConfig) -> the component
    kind: str  # PENALTY | INTERVENTION
    description: str = "(registered plug-in)"
    source: str = "-"
    settings: Mapping[str, Setting] = field(default_factory=lambda: MappingProxyType({}))
    config_keys: tuple[str, ...] = ()


def setting_value(name: str, setting: Setting, value: Any) -> tuple[Any, str | None]:
    """``(value, None)`` with an int made a float for a float setting (so ``1`` and ``1.0`` are
    one configuration), or ``(None, problem)`` for a wrong type or a value ``check`` refuses."""
    kind = type(setting.default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        return None, f"{name} must be of type {kind.__name__}, got {value!r}"
    if kind is float and not math.isfinite(value):
        return None, f"{name} must be a finite number, got {value!r}"
    if setting.check is not None and not setting.check(value):
        return None, f"{name} must be {setting.valid or 'a value its check accepts'}, got {value!r}"
    return value, None


def checked_settings(component: str, settings: Mapping[str, Setting]) -> Mapping[str, Setting]:
    """``settings`` as declared by ``component``, read-only, after checking each key and default.

    Raises:
        ValueError: a key that is not lower-case letters, digits and ``_``; a default that is not
            a JSON scalar or that its own check refuses.
    """
    for key, setting in settings.items():
        name = f"{component}.{key}"
        if not isinstance(key, str) or not _SETTING_KEY.fullmatch(key):
            raise ValueError(f"setting key must be lower-case letters, digits or '_', got {key!r}")
        if not isinstance(setting, Setting):
            raise ValueError(f"{name} must be declared as a Setting, got {setting!r}")
        if type(setting.default) not in SETTING_TYPES:
            kinds = ", ".join(t.__name__ for t in SETTING_TYPES)
            raise ValueError(f"{name}: the default must be one of {kinds}, got {setting.default!r}")
        _, problem = setting_value(name, setting, setting.default)
        if problem:
            raise ValueError(f"the default of {problem}")
    return MappingProxyType(dict(settings))


def resolve_settings(
    components: Mapping[str, ComponentSpec],
    in_use: Iterable[str] | None,
    given: Mapping[str, Any],
    user: str,
) -> tuple[dict[str, Any], list[str]]:
    """A configuration's component settings, and the problems with the given ones.

    Args:
        components: the registry.
        in_use: the configuration's components (registered ones), or ``None`` where its method or
            plug-in names are unknown (reported apart): then a setting is not checked for use.
        given: ``{"<component>.<key>": value}`` as written in the configuration.
        user: who uses ``in_use``, for the message (``"method 'ppo' (reg 'none')"``).

    Returns:
        ``(settings, problems)``: every setting the components in use declare, given or default;
        one line per unknown key (with the closest declared one), setting of a component not in
        use, wrong type or refused value.
    """
    declared = {f"{c.name}.{k}": c.name for c in components.values() for k in c.settings}
    used = None if in_use is None else [c for c in in_use if c in components]
    settings, problems = {}, []
    for name, value in given.items():
        owner = declared.get(name)
        if owner is None:
            problems.append(
                did_you_mean("plug-in setting", name, sorted(declared))
                if declared
                else f"unknown key {name!r} (no plug-in declares settings)"
            )
        elif used is not None and owner not in used:
            problems.append(f"{name} is a setting of plug-in {owner!r}, which {user} does not use")
        else:
            key = name.removeprefix(owner + ".")
            value, problem = setting_value(name, components[owner].settings[key], value)
            if problem:
                problems.append(problem)
            else:
                settings[name] = value
    for component in used or []:
        for key, setting in components[component].settings.items():
            settings.setdefault(f"{component}.{key}", setting.default)
    return settings, problems
