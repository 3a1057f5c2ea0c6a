"""The guard that keeps non-finite weights out of checkpoints.

PPO checks its losses, but a finite loss can still carry a non-finite gradient (an infinite
regularizer coefficient, an overflowing plug-in) that turns the weights NaN. The runner checks the
state it is about to save, so a good checkpoint is never overwritten by a poisoned one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from sphere_rl.algo.ppo import NonFiniteLossError

# Parts of PPOAgent.state_dict() that must be finite: networks, optimiser moments, normaliser.
# Plug-in states are left out: they may hold ±inf sentinels on purpose.
CHECKED_PARTS = ("actor", "critic", "actor_optimizer", "critic_optimizer", "normalizer")


class NonFiniteStateError(NonFiniteLossError):
    """The agent's weights or optimiser state hold NaN/Inf; nothing was saved."""


def first_non_finite(tree: Any, name: str = "") -> str | None:
    """Dotted name of the first floating tensor or array in ``tree`` (nested mappings, lists and
    tuples, in their order) holding a NaN or ±Inf; ``None`` if all are finite."""
    if isinstance(tree, torch.Tensor):
        finite = not tree.is_floating_point() or bool(torch.isfinite(tree).all())
        return None if finite else name
    if isinstance(tree, np.ndarray):
        finite = not np.issubdtype(tree.dtype, np.floating) or bool(np.isfinite(tree).all())
        return None if finite else name
    if isinstance(tree, Mapping):
        items = tree.items()
    elif isinstance(tree, list | tuple):
        items = enumerate(tree)
    else:
        return None
    for key, value in items:
        found = first_non_finite(value, f"{name}.{key}" if name else str(key))
        if found is not None:
            return found
    return None


def check_agent_state(agent_state: Mapping[str, Any] | None, checkpoint: str, step: int) -> None:
    """Raise before ``checkpoint`` is written if the agent's state is not finite.

    Raises:
        NonFiniteStateError: naming the first bad tensor (e.g. ``actor.expert_head.weight``).
    """
    if agent_state is None:
        return
    bad = first_non_finite({k: agent_state[k] for k in CHECKED_PARTS if k in agent_state})
    if bad is not None:
        raise NonFiniteStateError(
            f"non-finite values in {bad} at step {step:,}; {checkpoint} was not written, so the"
            " last good checkpoint is kept. Try a lower learning rate or regularizer coefficient."
        )
