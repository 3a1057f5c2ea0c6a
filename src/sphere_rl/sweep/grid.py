"""The grid of a sweep: which configurations a ``sphere sweep`` command stands for."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from sphere_rl.config import ConfigError, ExperimentConfig, build_config
from sphere_rl.methods import name_problems


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` → ``[0, 1, 2, 3, 4]``; ``"0,2,5-6"`` → ``[0, 2, 5, 6]`` (order kept, no repeats).

    Raises:
        ConfigError: on anything that is not a non-negative integer or an ``a-b`` range.
    """
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        low, dash, high = part.partition("-")
        try:
            first, last = int(low), int(high if dash else low)
        except ValueError:
            raise ConfigError(f"seeds: {part!r} is not an integer or a range like 0-4") from None
        if first < 0 or last < first:
            raise ConfigError(f"seeds: {part!r} is not a non-empty range of seeds >= 0")
        seeds += [s for s in range(first, last + 1) if s not in seeds]
    return seeds


def parse_names(text: str) -> list[str]:
    """``"ppo, sphere"`` → ``["ppo", "sphere"]`` (order kept, no repeats, no empty names)."""
    return list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))


def parse_variation(text: str) -> tuple[str, list[Any]]:
    """``"rho=1e-3,1e-2"`` → ``("rho", [0.001, 0.01])``: one configuration key and its values.

    Values are separated by the commas outside brackets, so a list-valued key works:
    ``"hidden=[8,8],[16]"`` → ``("hidden", [[8, 8], [16]])``. Each value is read as JSON where it
    parses (numbers, lists, ``true``, ``null``) and kept as a string otherwise (``grad``);
    :func:`expand_grid` validates them like any configuration key.

    Raises:
        ConfigError: without ``=``, with an empty key, without values, or with unbalanced brackets.
    """
    key, eq, values = text.partition("=")
    names = [v.strip() for v in _split_top_level(values, text) if v.strip()]
    if not eq or not key.strip() or not names:
        raise ConfigError(f"--vary {text!r}: expected KEY=VALUE[,VALUE...], e.g. rho=1e-3,1e-2")
    unique: dict[Any, Any] = {}
    for value in map(_json_or_text, names):  # lists are unhashable: keyed by their JSON
        unique.setdefault(json.dumps(value) if isinstance(value, list | dict) else value, value)
    return key.strip(), list(unique.values())


def _split_top_level(values: str, text: str) -> list[str]:
    """``"[8,8],[16]"`` → ``["[8,8]", "[16]"]``: split at the commas outside ``[]``/``{}``."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(values):
        depth += (char in "[{") - (char in "]}")
        if depth < 0:
            break
        if char == "," and depth == 0:
            parts.append(values[start:i])
            start = i + 1
    if depth != 0:
        raise ConfigError(f"--vary {text!r}: unbalanced brackets; write list values like"
                          " hidden=[8,8],[16]")  # fmt: skip
    return [*parts, values[start:]]


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def variant_name(cfg: ExperimentConfig, keys: list[str]) -> str:
    """The folder of one variation, e.g. ``rho=0.01,sphere_mode=grad`` (empty without keys; a
    plug-in's setting is a key too: ``feature_decay.coef=0.01``)."""
    values = cfg.to_dict()
    return ",".join(f"{key}={_folder_value(values[key])}" for key in keys)


def _folder_value(value: Any) -> str:
    # A list without spaces (hidden=[8,8]); any other value as before.
    return (
        json.dumps(value, separators=(",", ":")) if isinstance(value, list | tuple) else str(value)
    )


@dataclass(frozen=True)
class SweepGrid:
    """The axes of a sweep, plus the overrides every run shares.

    A ``None`` benchmark keeps what ``base`` says (its ``benchmark``, or its ``tasks`` list).
    ``variations`` adds one axis per configuration key (``{"rho": [1e-3, 1e-2]}``); their runs go
    into one sub-folder per combination (:func:`variant_name`).
    """

    methods: list[str]
    seeds: list[int]
    protocols: list[str]
    benchmarks: list[str | None] = field(default_factory=lambda: [None])
    base: dict[str, Any] = field(default_factory=dict)
    variations: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        size = len(self.methods) * len(self.seeds) * len(self.protocols) * len(self.benchmarks)
        for values in self.variations.values():
            size *= len(values)
        return size


def expand_grid(grid: SweepGrid) -> list[ExperimentConfig]:
    """One validated configuration per grid point, in variation, benchmark, method, protocol,
    seed order.

    Raises:
        ConfigError: listing the problems of every invalid point (each distinct message once),
            before anything runs.
    """
    if grid.size == 0:
        raise ConfigError("the sweep is empty: give at least one method, seed and protocol")
    configs, problems = [], {}
    keys = list(grid.variations)
    axes = itertools.product(
        itertools.product(*grid.variations.values()),
        grid.benchmarks,
        grid.methods,
        grid.protocols,
        grid.seeds,
    )
    for values, benchmark, method, protocol, seed in axes:
        overrides = {**grid.base, **dict(zip(keys, values, strict=True))}
        overrides.update(method=method, protocol=protocol, seed=seed)
        if benchmark is not None:
            overrides["benchmark"] = benchmark
        point = name_problems(overrides)  # reported beside build_config's, not instead of them
        try:
            cfg = build_config(overrides)
        except ConfigError as err:
            point = [*err.problems, *point]
        if point:
            where = benchmark or grid.base.get("benchmark") or "tasks"
            problems.setdefault(str(ConfigError.listing(point)), f"{where}/{method}/{protocol}")
        else:
            configs.append(cfg)
    if problems:
        raise ConfigError("\n".join(f"{where}: {message}" for message, where in problems.items()))
    return configs
