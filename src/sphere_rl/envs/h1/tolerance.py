"""A smooth "is ``x`` inside ``bounds``" score in [0, 1], the reward primitive of dm_control.

``tolerance`` is 1 for ``x`` within ``[lower, upper]`` and decays with the distance ``d`` to the
interval, measured in units of ``margin``. A sigmoid ``s`` shapes the decay: ``s(0) = 1`` and
``s(1) = value_at_margin``. This follows the definition documented for dm_control's
``rewards.tolerance`` (which HumanoidBench uses); the implementation here is our own.

Sigmoids, with ``v = value_at_margin`` and ``z = d · scale(v)``:

=============  ==============================  =====================
name           shape of ``z``                  ``scale(v)``
=============  ==============================  =====================
gaussian       exp(−z²/2)                      √(−2 ln v)
hyperbolic     1 / cosh z                      arccosh(1/v)
long_tail      1 / (z² + 1)                    √(1/v − 1)
reciprocal     1 / (|z| + 1)                   1/v − 1
tanh_squared   1 − tanh² z                     arctanh √(1 − v)
cosine         (1 + cos πz)/2 for |z| < 1      arccos(2v − 1)/π
linear         1 − z for |z| < 1               1 − v
quadratic      1 − z² for |z| < 1              √(1 − v)
=============  ==============================  =====================

The last three reach exactly 0 at ``|z| ≥ 1`` and accept ``v = 0``; the others need ``0 < v < 1``.
Each shape is applied to ``|z|`` (the distance is never negative inside :func:`tolerance`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

DEFAULT_VALUE_AT_MARGIN = 0.1

ArrayLike = float | npt.ArrayLike


# name -> (scale from value_at_margin, shape of the scaled distance z >= 0, finite support?).
# Every shape is 1 at z = 0, so points inside the bounds (distance 0) need no special case.
# Shapes are numpy ufunc expressions, so they accept Python floats and arrays alike.
_SIGMOIDS: dict[str, tuple[Callable[[float], float], Callable[[Any], Any], bool]] = {
    "gaussian": (lambda v: math.sqrt(-2.0 * math.log(v)), lambda z: np.exp(-0.5 * z * z), False),
    "hyperbolic": (lambda v: math.acosh(1.0 / v), lambda z: 1.0 / np.cosh(z), False),
    "long_tail": (lambda v: math.sqrt(1.0 / v - 1.0), lambda z: 1.0 / (z * z + 1.0), False),
    "reciprocal": (lambda v: 1.0 / v - 1.0, lambda z: 1.0 / (z + 1.0), False),
    "tanh_squared": (
        lambda v: math.atanh(math.sqrt(1.0 - v)),
        lambda z: 1.0 - np.tanh(z) ** 2,
        False,
    ),
    "cosine": (
        lambda v: math.acos(2.0 * v - 1.0) / math.pi,
        lambda z: np.where(z < 1.0, 0.5 * (1.0 + np.cos(np.pi * np.minimum(z, 1.0))), 0.0),
        True,
    ),
    "linear": (lambda v: 1.0 - v, lambda z: np.maximum(1.0 - z, 0.0), True),
    "quadratic": (lambda v: math.sqrt(1.0 - v), lambda z: np.maximum(1.0 - z * z, 0.0), True),
}
SIGMOIDS: tuple[str, ...] = tuple(_SIGMOIDS)


@functools.lru_cache(maxsize=256)
def _scale(kind: str, value_at_margin: float) -> tuple[float, Callable[[Any], Any]]:
    """Validated (scale, shape) of sigmoid ``kind`` for ``value_at_margin``."""
    try:
        scale_of, shape, finite_support = _SIGMOIDS[kind]
    except KeyError:
        raise ValueError(f"unknown sigmoid {kind!r}; valid: {', '.join(SIGMOIDS)}") from None
    if finite_support:
        if not 0.0 <= value_at_margin < 1.0:
            raise ValueError(
                f"value_at_margin must be in [0, 1) for the {kind} sigmoid, got {value_at_margin}"
            )
    elif not 0.0 < value_at_margin < 1.0:
        raise ValueError(
            f"value_at_margin must be in (0, 1) for the {kind} sigmoid, got {value_at_margin}"
        )
    return scale_of(value_at_margin), shape


def decay(
    d: ArrayLike, value_at_margin: float = DEFAULT_VALUE_AT_MARGIN, kind: str = "gaussian"
) -> np.ndarray:
    """Decay profile ``s(|d|)`` with ``s(0) = 1`` and ``s(1) = value_at_margin``, elementwise."""
    scale, shape = _scale(kind, value_at_margin)
    return np.asarray(shape(np.abs(np.asarray(d, dtype=float)) * scale), dtype=float)


def tolerance(
    x: ArrayLike,
    bounds: tuple[float, float] = (0.0, 0.0),
    margin: float = 0.0,
    sigmoid: str = "gaussian",
    value_at_margin: float = DEFAULT_VALUE_AT_MARGIN,
) -> float | np.ndarray:
    """Score in [0, 1] of how close ``x`` is to the interval ``bounds``, elementwise.

    Args:
        x: scalar or array.
        bounds: ``(lower, upper)`` with ``lower <= upper``; either end may be infinite.
        margin: distance outside ``bounds`` at which the score has fallen to ``value_at_margin``;
            ``0`` makes the score a hard 0/1 indicator.
        sigmoid: decay shape, one of :data:`SIGMOIDS`.
        value_at_margin: score at distance ``margin`` from the interval.

    Returns:
        A float for scalar ``x``, otherwise an array shaped like ``x``. NaN inputs give NaN for
        ``margin > 0`` and 0 for ``margin == 0``.
    """
    lower, upper = bounds
    if lower > upper:
        raise ValueError(f"lower bound must not exceed upper bound, got bounds={bounds}")
    if margin < 0:
        raise ValueError(f"margin must be non-negative, got {margin}")
    scale, shape = _scale(sigmoid, value_at_margin)
    if isinstance(x, float | int):
        # Scalar fast path: plain comparisons instead of array machinery (~10x faster per call).
        if lower <= x <= upper:
            return 1.0
        if margin == 0 or x != x:
            return 0.0 if margin == 0 else math.nan
        distance = lower - x if x < lower else x - upper
        return float(shape(distance / margin * scale))
    values = np.asarray(x, dtype=float)
    if margin == 0:
        result = ((lower <= values) & (values <= upper)).astype(float)
    else:
        result = np.asarray(shape(_distance(values, lower, upper) * (scale / margin)), dtype=float)
    return float(result) if result.ndim == 0 else result


def _distance(values: np.ndarray, lower: float, upper: float) -> np.ndarray:
    """Distance of each value to ``[lower, upper]`` (0 inside; NaN stays NaN).

    Half-open and point intervals get their own branch: fewer array operations on the per-step
    reward path, and no ``inf - inf`` for infinite values at an infinite bound.
    """
    if lower == -math.inf and upper == math.inf:
        return np.where(np.isnan(values), math.nan, 0.0)
    if lower == upper:
        return np.abs(values - lower) if lower else np.abs(values)
    if upper == math.inf:
        return np.maximum(lower - values, 0.0)
    if lower == -math.inf:
        return np.maximum(values - upper, 0.0)
    return np.maximum(np.maximum(lower - values, values - upper), 0.0)
