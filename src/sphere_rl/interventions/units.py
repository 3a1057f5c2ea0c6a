"""The networks as the interventions see them: towers, weight matrices and hidden units.

A *tower* is a trunk of hidden layers plus the output layer it feeds: a dense actor or critic is one
tower; an MoE actor has two, the stacked experts (with their output layer) and the gating network
(with its logits layer). Every layer of a tower is viewed as ``E`` groups of units, ``E = 1`` for a
dense trunk and the number of experts for :class:`~sphere_rl.nn.ExpertTrunk`, so one tensor
operation acts on all experts at once:

* a weight matrix is ``(E, fan_out, fan_in)``: row ``j`` holds the weights *into* unit ``j``, and
  column ``j`` of the next layer's matrix the weights *out of* it;
* biases and per-unit affine parameters (LayerNorm, Parseval's diagonal scale) are ``(E, d)``.

A :class:`Slot` pairs a parameter with the function giving that view. The views alias the
parameters, so in-place edits change the network, and the same function applied to an Adam state
tensor (shaped like its parameter) gives the state of the same units.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sphere_rl.algo.adam import Adam
from sphere_rl.nn.layers import (
    HIDDEN_GAIN,
    POLICY_HEAD_GAIN,
    VALUE_HEAD_GAIN,
    ExpertLinear,
    ExpertTrunk,
    MLPTrunk,
)

ADAM_MOMENTS = ("exp_avg", "exp_avg_sq")


@dataclass(frozen=True)
class Slot:
    """A parameter and the function that views it, or any tensor shaped like it, per unit."""

    param: nn.Parameter
    view: Callable[[Tensor], Tensor]

    def get(self, like: Tensor | None = None) -> Tensor:
        return self.view(self.param if like is None else like)


@dataclass(frozen=True)
class WeightMatrix:
    """One linear layer: ``weight`` viewed ``(E, fan_out, fan_in)``, ``bias`` ``(E, fan_out)``.

    ``gain`` is the gain of its orthogonal initialisation; ``hidden`` is false for output layers.
    """

    name: str
    weight: Slot
    bias: Slot
    gain: float
    hidden: bool

    @property
    def init_std(self) -> float:
        """Entry standard deviation of a fresh orthogonal initialisation: ``gain / √max(shape)``.

        Orthogonal rows (``fan_out ≤ fan_in``) have norm ``gain`` spread over ``fan_in`` entries;
        orthogonal columns have norm ``gain`` spread over ``fan_out`` entries.
        """
        return self.gain / max(self.weight.get().shape[-2:]) ** 0.5


@dataclass(frozen=True)
class UnitLayer:
    """The hidden units of one layer of a tower.

    Attributes:
        name: e.g. ``"actor.experts.1"`` (tower name and layer index).
        incoming: the layer's weights, ``(E, d, fan_in)``.
        bias: ``(E, d)``.
        outgoing: the next layer's weights, ``(E, fan_out, d)``.
        affine: per-unit parameters between the linear map and the activation, ``(E, d)`` each,
            with the value a fresh unit gets (1 for scales, 0 for shifts).
        gain: initialisation gain of ``incoming``.
        trunk, index: ``trunk(obs)[index]`` are the units' post-activation outputs.
    """

    name: str
    incoming: Slot
    bias: Slot
    outgoing: Slot
    affine: tuple[tuple[Slot, float], ...]
    gain: float
    trunk: nn.Module
    index: int

    @property
    def shape(self) -> tuple[int, int]:
        """``(E, d)``: groups and units per group."""
        return tuple(self.bias.get().shape)  # type: ignore[return-value]


@dataclass(frozen=True)
class Tower:
    name: str
    trunk: MLPTrunk | ExpertTrunk
    head: nn.Linear | ExpertLinear
    head_gain: float


def towers(network: nn.Module, name: str, head_gain: float) -> list[Tower]:
    """The towers of a ``sphere_rl`` actor or critic.

    Args:
        network: :class:`~sphere_rl.nn.MLPActor`, :class:`~sphere_rl.nn.MLPCritic` or an MoE actor.
        name: prefix for layer names (``"actor"``, ``"critic"``).
        head_gain: initialisation gain of the network's output layer.
    """
    if hasattr(network, "experts"):
        # The gating logits layer is initialised like a policy head (gain 0.01, see nn/moe.py).
        return [
            Tower(f"{name}.experts", network.experts, network.expert_head, head_gain),
            Tower(f"{name}.gate", network.gate, network.gate_head, POLICY_HEAD_GAIN),
        ]
    if hasattr(network, "trunk") and hasattr(network, "head"):
        return [Tower(name, network.trunk, network.head, head_gain)]
    raise TypeError(f"{type(network).__name__} is neither a dense nor an MoE sphere_rl network")


def agent_towers(agent, critic: bool = True) -> list[Tower]:
    """The actor's towers, then the critic's when ``critic`` is true."""
    result = towers(agent.actor, "actor", POLICY_HEAD_GAIN)
    if critic:
        result += towers(agent.critic, "critic", VALUE_HEAD_GAIN)
    return result


def _unit_major(layer: nn.Module) -> Callable[[Tensor], Tensor]:
    """View a linear layer's weight as ``(E, fan_out, fan_in)``."""
    if isinstance(layer, ExpertLinear):  # stored (E, fan_in, fan_out) for bmm
        return lambda t: t.transpose(-1, -2)
    if isinstance(layer, nn.Linear):  # stored (fan_out, fan_in)
        return lambda t: t.unsqueeze(0)
    raise TypeError(f"expected nn.Linear or ExpertLinear, got {type(layer).__name__}")


def _per_unit(groups: int, width: int) -> Callable[[Tensor], Tensor]:
    """View ``(d,)``, ``(E, d)`` or ``(E, 1, d)`` per-unit parameters as ``(E, d)``."""
    return lambda t: t.view(groups, width)


def weight_matrices(tower: Tower) -> list[WeightMatrix]:
    """The tower's hidden layers, then its output layer."""
    layers = [*tower.trunk.linears, tower.head]
    gains = [HIDDEN_GAIN] * len(tower.trunk.linears) + [tower.head_gain]
    result = []
    for i, (layer, gain) in enumerate(zip(layers, gains, strict=True)):
        weight = Slot(layer.weight, _unit_major(layer))
        groups, width = weight.get().shape[:2]
        bias = Slot(layer.bias, _per_unit(groups, width))
        hidden = layer is not tower.head
        result.append(WeightMatrix(f"{tower.name}.{i}", weight, bias, gain, hidden))
    return result


def _affine_slots(norm: nn.Module, groups: int, width: int) -> tuple[tuple[Slot, float], ...]:
    """Per-unit parameters of the module between a layer's linear map and its activation."""
    view = _per_unit(groups, width)
    slots = []
    for attr, fresh in (("weight", 1.0), ("bias", 0.0)):
        param = getattr(norm, attr, None)
        if isinstance(param, nn.Parameter):
            slots.append((Slot(param, view), fresh))
    return tuple(slots)


def hidden_units(tower: Tower) -> list[UnitLayer]:
    """The hidden layers of a tower as :class:`UnitLayer` s.

    Raises:
        ValueError: for CReLU trunks, whose units feed two columns of the next layer.
    """
    if tower.trunk.activation == "crelu":
        raise ValueError("unit-level interventions do not support CReLU trunks")
    matrices = weight_matrices(tower)
    result = []
    for i, (layer, nxt, norm) in enumerate(
        zip(matrices[:-1], matrices[1:], tower.trunk.norms, strict=True)
    ):
        groups, width = layer.bias.get().shape
        result.append(
            UnitLayer(
                name=layer.name,
                incoming=layer.weight,
                bias=layer.bias,
                outgoing=nxt.weight,
                affine=_affine_slots(norm, groups, width),
                gain=layer.gain,
                trunk=tower.trunk,
                index=i,
            )
        )
    return result


def unit_activations(
    layers: Sequence[UnitLayer], obs: Tensor, known: dict[int, list[Tensor]] | None = None
) -> list[Tensor]:
    """Post-activation outputs ``(E, N, d)`` of each layer on ``obs`` ``(N, obs_dim)``.

    Each trunk runs once, however many of its layers are asked for; ``known`` maps ``id(trunk)``
    to outputs already computed on ``obs``. Call under ``no_grad``.
    """
    outputs: dict[int, list[Tensor]] = dict(known or {})
    result = []
    for layer in layers:
        key = id(layer.trunk)
        if key not in outputs:
            outputs[key] = layer.trunk(obs)
        h = outputs[key][layer.index]
        result.append(h if h.dim() == 3 else h.unsqueeze(0))
    return result


def orthogonal_init(shape: Sequence[int], gain: float, like: Tensor) -> Tensor:
    """``(E, rows, cols)`` independent draws of the orthogonal initialisation with ``gain``.

    Batched over ``E`` (one QR of a stacked Gaussian); the sign correction makes each draw
    Haar-distributed, as :func:`torch.nn.init.orthogonal_` does for one matrix.
    """
    groups, rows, cols = shape
    tall = torch.randn(
        groups, max(rows, cols), min(rows, cols), dtype=like.dtype, device=like.device
    )
    q, r = torch.linalg.qr(tall)
    q = q * r.diagonal(dim1=-2, dim2=-1).sign().unsqueeze(-2)
    return gain * (q if rows >= cols else q.transpose(-1, -2))


@torch.no_grad()
def reinitialize_units_(
    layer: UnitLayer, mask: Tensor, optimizers: Sequence[Adam | torch.optim.Optimizer] = ()
) -> None:
    """Replace the units selected by ``mask`` with fresh ones that do not affect the output.

    Fresh incoming weights (a new draw of the layer's initialisation), zero bias, affine parameters
    back to their initial values, zero outgoing weights, and zero Adam moments for all of these.
    With zero outgoing weights a new unit adds nothing to the output, which changes only by the
    removed units' former contribution (small for the units CBP and ReDo choose) and, in a
    LayerNorm layer, through the normalisation statistics, which see the new unit.

    Args:
        layer: the units' layer.
        mask: ``(E, d)`` boolean, true for the units to replace.
        optimizers: optimisers that may hold Adam state for the layer's parameters (``state``
            keyed by parameter, as in :mod:`torch.optim`).
    """
    if not bool(mask.any()):
        return
    rows, cols = mask.unsqueeze(-1), mask.unsqueeze(-2)
    incoming = layer.incoming.get()
    fresh = orthogonal_init(incoming.shape, layer.gain, like=incoming)
    incoming.copy_(torch.where(rows, fresh, incoming))
    layer.bias.get().masked_fill_(mask, 0.0)
    layer.outgoing.get().masked_fill_(cols, 0.0)
    for slot, value in layer.affine:
        slot.get().masked_fill_(mask, value)
    touched = [(layer.incoming, rows), (layer.bias, mask), (layer.outgoing, cols)]
    touched += [(slot, mask) for slot, _ in layer.affine]
    for optimizer in optimizers:
        for slot, where in touched:
            state = optimizer.state.get(slot.param, {})
            for key in ADAM_MOMENTS:
                if key in state:
                    slot.get(state[key]).masked_fill_(where, 0.0)
