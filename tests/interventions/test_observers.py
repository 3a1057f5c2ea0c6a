"""CBP and ReDo are minibatch observers: PPO hands them every minibatch's forward pass, they add
no penalty and log no ``reg/…`` value, and they train exactly as when they posed as regularizers
of weight zero (the path before the plug-in contract declared the observer hook)."""

import pytest
import torch
from intervention_helpers import random_rollout, small_agent

import sphere_rl
from sphere_rl.algo.hooks import MinibatchObserver
from sphere_rl.interventions import ContinualBackprop, ReDo
from sphere_rl.interventions.observer import UnitActivityObserver

# Aggressive settings: units are replaced or recycled during the first update already.
FAST = {"cbp_maturity": 2, "cbp_replacement_rate": 0.2, "redo_period": 3, "redo_tau": 0.5}


class ZeroWeightRegularizer:
    """The earlier path, rebuilt: the intervention posed as a fixed-mode regularizer of weight 0,
    and PPO handed it each minibatch through ``penalty``, where it kept the minibatch's activity
    (every minibatch, also ReDo)."""

    mode, coef, pcgrad = "fixed", 0.0, False

    def __init__(self, observer: UnitActivityObserver) -> None:
        self.observer, self.name = observer, observer.name

    def penalty(self, output, obs, agent) -> torch.Tensor:
        UnitActivityObserver.observe_minibatch(self.observer, output, obs, agent)
        return torch.zeros((), device=obs.device)


def _train(arch: str, reg: str, earlier_path: bool):
    torch.manual_seed(0)
    agent = small_agent(arch, reg, **FAST)
    if earlier_path:
        agent.regularizers += [ZeroWeightRegularizer(o) for o in agent.observers]
        agent.observers = []
    stats = [agent.update(*random_rollout(agent, seed=seed)) for seed in (1, 2)]
    return agent, stats


@pytest.mark.parametrize("arch", ["mlp", "topk_moe"])  # topk_moe: sparse dispatch
@pytest.mark.parametrize("reg", ["cbp+redo", "sphere+cbp+redo"])
def test_observers_train_exactly_as_zero_weight_regularizers_did(arch, reg):
    now, stats = _train(arch, reg, earlier_path=False)
    then, earlier_stats = _train(arch, reg, earlier_path=True)
    (cbp,), (cbp_then,) = ([c for c in a.callbacks if isinstance(c, ContinualBackprop)]
                           for a in (now, then))  # fmt: skip
    (redo,), (redo_then,) = ([c for c in a.callbacks if isinstance(c, ReDo)] for a in (now, then))
    assert cbp.replaced == cbp_then.replaced > 0 and redo.recycled == redo_then.recycled > 0
    for network in ("actor", "critic"):
        pairs = zip(getattr(now, network).parameters(), getattr(then, network).parameters(),
                    strict=True)  # fmt: skip
        for p, q in pairs:
            torch.testing.assert_close(p, q, rtol=0, atol=0)
    # The same statistics, less the zero penalties the earlier path logged.
    for new, old in zip(stats, earlier_stats, strict=True):
        assert not [k for k in new if k.startswith(("reg/cbp", "reg/redo"))]
        assert {k: v for k, v in old.items() if not k.startswith(("reg/cbp", "reg/redo"))} == new


def test_cbp_and_redo_are_observers_not_regularizers():
    agent = small_agent("topk_moe", "cbp+redo")
    assert [type(o) for o in agent.observers] == [ContinualBackprop, ReDo]
    assert agent.regularizers == []
    stats = agent.update(*random_rollout(agent))
    assert not [k for k in stats if k.startswith("reg/")]


class CountMinibatches:
    """An observer plug-in and nothing else."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def observe_minibatch(self, output, obs, agent) -> None:
        assert output.mean.shape[0] == obs.shape[0] and torch.is_grad_enabled()
        self.sizes.append(obs.shape[0])


def test_a_registered_observer_receives_every_minibatch(isolated_registries):
    sphere_rl.register_intervention("count_minibatches", lambda cfg: CountMinibatches())
    agent = small_agent("mlp", "count_minibatches")
    (observer,) = agent.observers
    assert isinstance(observer, MinibatchObserver)
    assert agent.regularizers == [] and agent.callbacks == []
    agent.update(*random_rollout(agent))
    # 64 states in minibatches of 16, 2 epochs.
    assert observer.sizes == [16] * 8
