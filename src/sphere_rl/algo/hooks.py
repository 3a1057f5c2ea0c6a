"""The hooks through which a component (a plug-in, ``--reg``) joins PPO without editing the loop.

A component takes every role whose hook it declares (:func:`sphere_rl.methods.build_agent`):

* :class:`ActorRegularizer`: a penalty on the actor's loss on every minibatch; its ``mode`` says
  how (see :mod:`sphere_rl.regularizers.combine`): ``fixed`` and ``loss`` fold it into the loss,
  ``grad`` combines gradients by norm ratio (at most one regularizer per agent may use ``grad``
  mode or PCGrad, which need its gradient apart). A regularizer may add several penalties, each
  with its own coefficient, by defining ``penalty_terms`` (:func:`penalty_terms`); each is logged
  as ``reg/<name>``.
* :class:`MinibatchObserver`: sees the actor's forward pass on every minibatch, before the update,
  and adds nothing to the loss (CBP and ReDo read their unit statistics there).
* :class:`TrainingCallback`: acts on the networks at fixed points (after each optimiser step, at a
  task boundary) and keeps checkpointed state: the home of resets and unit replacement (CBP,
  ReDo, Shrink & Perturb).
* :class:`ActorPreparer` changes the actor's structure before the optimisers exist (Parseval's
  diagonal layers); :class:`AgentAttacher` binds to the agent once it is built (unit views,
  initial parameters).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor, nn

from sphere_rl.algo.adam import Adam
from sphere_rl.nn.policy import PolicyOutput


class Agent(Protocol):
    """What a hook may rely on of the agent that calls it (:class:`~sphere_rl.algo.ppo.PPOAgent`,
    which imports this module, so it is described here rather than imported)."""

    actor: nn.Module
    critic: nn.Module
    actor_optimizer: Adam
    critic_optimizer: Adam
    # the minibatch's (T,) per-sample policy losses during ActorRegularizer.penalty, else None
    sample_policy_loss: Tensor | None


@runtime_checkable
class ActorRegularizer(Protocol):
    name: str
    mode: str  # "fixed" | "loss" | "grad"
    coef: float  # λ for "fixed", ρ for "loss" and "grad"
    pcgrad: bool

    def penalty(self, output: PolicyOutput, obs: Tensor, agent: Agent) -> Tensor:
        """Scalar penalty for one minibatch, from the actor's forward pass on ``obs``.

        ``agent.sample_policy_loss`` holds the minibatch's ``(T,)`` per-sample policy losses (with
        their graph) during this call, for penalties built from loss gradients.
        """
        ...


@runtime_checkable
class MinibatchObserver(Protocol):
    def observe_minibatch(self, output: PolicyOutput, obs: Tensor, agent: Agent) -> None:
        """Called with the actor's forward pass ``output`` on each minibatch ``obs``, after the
        forward pass and before the optimiser step (:meth:`TrainingCallback.after_optimizer_step`
        follows). The output carries the graph of the update: keep only detached tensors."""
        ...


@runtime_checkable
class ActorPreparer(Protocol):
    def prepare_actor(self, actor: nn.Module) -> None:
        """Change the actor's structure (e.g. add layers) before its optimiser is created."""
        ...


@runtime_checkable
class AgentAttacher(Protocol):
    def attach(self, agent: Agent) -> None:
        """Bind to the agent once it is built (before any update or checkpoint load)."""
        ...


def penalty_terms(
    reg: ActorRegularizer, output: PolicyOutput, obs: Tensor, agent: Agent
) -> list[tuple[str, Tensor, float]]:
    """``(name, scalar penalty, coefficient)`` of each penalty ``reg`` adds to one minibatch.

    A regularizer with a ``penalty_terms`` method of the same signature gives several, each
    combined with the policy loss by its own coefficient (SPHERE's feature and gate penalties);
    any other gives its one :meth:`ActorRegularizer.penalty` with ``coef``.
    """
    if hasattr(reg, "penalty_terms"):
        return reg.penalty_terms(output, obs, agent)
    return [(reg.name, reg.penalty(output, obs, agent), reg.coef)]


class TrainingCallback:
    """Base class with no-op hooks; override the ones a method needs."""

    def on_task_start(self, agent: Agent, task_index: int) -> None:
        """Called before the first update on each task (after the LR restart and the optimiser
        reset, if any)."""

    def after_optimizer_step(self, agent: Agent) -> None:
        """Called after every actor/critic optimiser step."""

    def state_dict(self) -> dict:
        """Callback state to checkpoint (e.g. utilities); empty if stateless."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` saved."""
