"""Weight initialisation schemes applied to a built network.

Two schemes exist (the experiment key ``init``):

* ``"release"`` (default, the paper presets): what the authors' JAX release gets from Flax's
  defaults on every Dense layer of actor, gate and critic, heads included: ``lecun_normal`` weights
  and zero biases. Flax's ``lecun_normal`` draws a normal truncated at ±2σ and divides σ by the
  standard deviation of the truncated unit normal, so the weights' variance is exactly ``1/fan_in``.
* ``"orthogonal"``: the CleanRL/SB3 convention the networks are constructed with (orthogonal,
  gain √2 in hidden layers, 0.01 for policy and gating heads, 1 for the value head, zero biases).

Under ``"release"`` the gating network's initial logits have a standard deviation of order one
(``sqrt(mean(x²)/8)`` for three ReLU layers, see ``tests/nn/test_init.py``), so routing starts
input-dependent; under ``"orthogonal"`` the 0.01 head makes them ~100× smaller and routing starts
almost uniform.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from sphere_rl.nn.layers import ExpertLinear
from sphere_rl.vocab import INIT_SCHEMES  # the `init` key's values; defined there for the config

# Flax's variance_scaling truncates the unit normal at ±2 standard deviations.
TRUNCATION = 2.0


def truncated_unit_normal_std(bound: float = TRUNCATION) -> float:
    """Standard deviation of a unit normal truncated to ``[-bound, bound]`` (0.8796 for 2).

    ``Var = 1 − 2·b·φ(b) / (Φ(b) − Φ(−b))`` for the symmetric truncation at ``b``.
    """
    density = math.exp(-0.5 * bound * bound) / math.sqrt(2.0 * math.pi)
    mass = math.erf(bound / math.sqrt(2.0))
    return math.sqrt(1.0 - 2.0 * bound * density / mass)


def lecun_normal_(weight: Tensor, fan_in: int) -> Tensor:
    """Fill ``weight`` (any shape) in place with Flax's ``lecun_normal``: i.i.d. draws from a normal
    truncated at ±2σ, ``σ = 1 / (sqrt(fan_in) · 0.8796)``, so that their variance is ``1/fan_in``.

    One call fills the whole tensor, so the experts of a stacked ``(E, in, out)`` weight get
    independent draws without a loop.
    """
    sigma = 1.0 / (math.sqrt(fan_in) * truncated_unit_normal_std())
    with torch.no_grad():
        return nn.init.trunc_normal_(
            weight, mean=0.0, std=sigma, a=-TRUNCATION * sigma, b=TRUNCATION * sigma
        )


def fan_in(layer: nn.Module) -> int:
    """Inputs per output unit: ``in_features`` of an ``nn.Linear`` or an ``ExpertLinear``."""
    if isinstance(layer, nn.Linear | ExpertLinear):
        return layer.in_features
    raise TypeError(f"no fan-in for {type(layer).__name__}")


def initialize_(network: nn.Module, scheme: str) -> nn.Module:
    """Initialise every linear layer of a built ``network`` in place with ``scheme``.

    ``"release"`` re-draws the weight of each ``nn.Linear`` and :class:`ExpertLinear` with
    :func:`lecun_normal_` and zeroes its bias; other parameters (LayerNorm affine parameters,
    ``log_std``) keep their construction values (ones, zeros), as in the release.
    ``"orthogonal"`` keeps the construction-time orthogonal initialisation.

    Returns:
        ``network``, for chaining.

    Raises:
        ValueError: for an unknown scheme.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"init must be one of {INIT_SCHEMES}, got {scheme!r}")
    if scheme == "orthogonal":
        return network
    for layer in network.modules():
        if isinstance(layer, nn.Linear | ExpertLinear):
            lecun_normal_(layer.weight, fan_in(layer))
            with torch.no_grad():
                layer.bias.zero_()
    return network
