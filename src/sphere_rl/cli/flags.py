"""Command options named after configuration keys, declared once: in the command's signature.

The naming rule: a parameter of a command whose name is a field of
:class:`~sphere_rl.config.ExperimentConfig` is the flag of that key. The parameter
``steps_per_task`` is the option ``--steps-per-task`` (typer's spelling) and sets the key
``steps_per_task``. Its typer declaration (type, help, shown default) is then the only place the
flag is written: :func:`config_flags` derives the overrides from the signature and the values the
command received, so adding a flag is adding a parameter. Typer needs one explicit parameter per
option, so the signature is kept as the declaration rather than generated from a table.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Collection, Mapping
from typing import Any

from sphere_rl.config import PRESETS, ExperimentConfig

CONFIG_KEYS = frozenset(field.name for field in dataclasses.fields(ExperimentConfig))


def config_flags(
    command: Callable[..., Any], params: Mapping[str, Any], exclude: Collection[str] = ()
) -> dict[str, Any]:
    """``{key: value}`` for each parameter of ``command`` named after a configuration key that was
    given (not ``None``), in the order ``command`` declares them (click records ``params`` in
    command-line order; declaration order keeps the overrides the same however the user orders
    the flags).

    Args:
        command: the typer command function; its signature declares the flags.
        params: the values it received, ``ctx.params`` of its click context. For the types these
            flags have (str, int, float, bool) they are the values the function gets too.
        exclude: parameters named after a key that do not hold one value of it (``sphere sweep
            --benchmark`` is a comma-separated grid axis).
    """
    return {
        name: params[name]
        for name in inspect.signature(command).parameters
        if name in CONFIG_KEYS and name not in exclude and params[name] is not None
    }


def preset_values(key: str) -> dict[str, Any]:
    """Each preset's value of ``key`` (the preset's own, else the default)."""
    default = getattr(ExperimentConfig(), key)
    return {name: preset.get(key, default) for name, preset in PRESETS.items()}


def preset_default(key: str) -> str:
    """``"cw10: 1,000,000, cw20: 1,000,000, hb5: 10,000,000, quick: 20,000"``: the value of ``key``
    a run gets under each preset, shown as the default of every flag a preset sets (the preset
    itself is only known once the command line is parsed)."""
    shown = (f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else f"{v:g}"
             if isinstance(v, float) else str(v) for v in preset_values(key).values())  # fmt: skip
    return ", ".join(f"{name}: {v}" for name, v in zip(PRESETS, shown, strict=True))


def plain_default(key: str) -> str:
    """The default of ``key`` as ``--help`` shows it, for a flag no preset sets."""
    return str(getattr(ExperimentConfig(), key))
