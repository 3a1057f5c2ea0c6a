"""sphere_rl's Adam steps bitwise as torch.optim.Adam does, and their state dicts interchange.

torch.optim.Adam with the same kernel is the oracle: parameters and state are compared with
torch.equal after every phase, through learning-rate changes, parameters that get no gradient on
some steps (so their step counters differ), and checkpoints loaded in both directions.
"""

import copy

import pytest
import torch
from torch import nn

from sphere_rl.algo.adam import Adam
from sphere_rl.algo.ppo import make_adam

KERNELS = ("fused", "foreach")
OTHER = {"fused": "foreach", "foreach": "fused"}


class Net(nn.Module):
    """A small MLP and a side layer that only every third step uses (no gradient otherwise)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3))
        self.side = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor, step: int) -> torch.Tensor:
        y = self.body(x)
        return self.side(y) if step % 3 == 2 else y


def torch_adam(net: nn.Module, kernel: str) -> torch.optim.Adam:
    return torch.optim.Adam(net.parameters(), 3e-4, eps=1e-5, **{kernel: True})


def ours(net: nn.Module, kernel: str) -> Adam:
    return Adam(net.parameters(), 3e-4, eps=1e-5, kernel=kernel)


def train(pairs, steps: int, start: int = 0) -> None:
    """Step every (net, optimiser) pair on the same batches with a changing learning rate."""
    for step in range(start, start + steps):
        gen = torch.Generator().manual_seed(step)
        x = torch.randn(7, 5, generator=gen)
        lr = 1e-2 / (1 + step) if step % 2 else 3e-3
        for net, opt in pairs:
            opt.zero_grad(set_to_none=True)
            net(x, step).pow(3).mean().backward()
            for group in opt.param_groups:
                group["lr"] = lr
            opt.step()


def assert_same(net_a, opt_a, net_b, opt_b) -> None:
    for (name, p), q in zip(net_a.named_parameters(), net_b.parameters(), strict=True):
        assert torch.equal(p, q), name
    sa, sb = opt_a.state_dict(), opt_b.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert list(sa["state"]) == list(sb["state"])
    for i, state in sa["state"].items():
        assert list(state) == list(sb["state"][i]) == ["step", "exp_avg", "exp_avg_sq"]
        for key, value in state.items():
            other = sb["state"][i][key]
            assert (value.dtype, value.device) == (other.dtype, other.device), (i, key)
            assert torch.equal(value, other), (i, key)


def twins():
    torch.manual_seed(0)
    net = Net()
    return net, copy.deepcopy(net)


@pytest.mark.parametrize("kernel", KERNELS)
def test_steps_are_bitwise_torch_adam(kernel):
    mine, ref = twins()
    opt, oracle = ours(mine, kernel), torch_adam(ref, kernel)
    train([(mine, opt), (ref, oracle)], 8)
    assert_same(mine, opt, ref, oracle)
    # The side layer missed steps, so its counter is behind the body's: per-parameter steps.
    steps = {p: s["step"].item() for p, s in opt.state.items()}
    assert (steps[mine.side.weight], steps[mine.body[0].weight]) == (2.0, 8.0)


def test_the_two_kernels_round_differently():
    """So the kernel a loaded state names is seen in the numbers (the round-trip test relies on
    it)."""
    a, b = twins()
    opt_a, opt_b = ours(a, "fused"), ours(b, "foreach")
    train([(a, opt_a), (b, opt_b)], 8)
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize("kernel", KERNELS)
def test_state_dicts_load_both_ways_and_training_goes_on_identically(kernel):
    mine, ref = twins()
    opt, oracle = ours(mine, kernel), torch_adam(ref, kernel)
    train([(mine, opt), (ref, oracle)], 5)
    saved_mine, saved_torch = copy.deepcopy(opt.state_dict()), copy.deepcopy(oracle.state_dict())
    # Swap: torch's Adam continues from our checkpoint, ours from torch's. Each is built with the
    # other kernel: a loaded state's options (its kernel among them) replace the built ones.
    torch_from_mine, mine_from_torch = copy.deepcopy(mine), copy.deepcopy(ref)
    opt_t = torch_adam(torch_from_mine, OTHER[kernel])
    opt_t.load_state_dict(saved_mine)
    opt_m = ours(mine_from_torch, OTHER[kernel])
    opt_m.load_state_dict(saved_torch)
    assert_same(mine_from_torch, opt_m, torch_from_mine, opt_t)
    # The uninterrupted pair and the swapped pair go on.
    pairs = [(mine, opt), (ref, oracle), (mine_from_torch, opt_m), (torch_from_mine, opt_t)]
    train(pairs, 5, start=5)
    assert_same(mine, opt, ref, oracle)
    assert_same(mine_from_torch, opt_m, ref, oracle)
    assert_same(torch_from_mine, opt_t, ref, oracle)


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_fresh_state_dict_matches_torch_and_loads_before_any_step(kernel):
    mine, ref = twins()
    opt, oracle = ours(mine, kernel), torch_adam(ref, kernel)
    assert not opt.state
    assert opt.state_dict() == oracle.state_dict()
    opt.load_state_dict(copy.deepcopy(oracle.state_dict()))
    train([(mine, opt), (ref, oracle)], 3)
    assert_same(mine, opt, ref, oracle)


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad_as_torch(set_to_none):
    mine, ref = twins()
    opt, oracle = ours(mine, "fused"), torch_adam(ref, "fused")
    x = torch.randn(4, 5)
    for net, o in [(mine, opt), (ref, oracle)]:
        net(x, 0).sum().backward()
        o.zero_grad(set_to_none=set_to_none)
    for p, q in zip(mine.parameters(), ref.parameters(), strict=True):
        if set_to_none or q.grad is None:
            assert p.grad is None and q.grad is None
        else:
            assert torch.equal(p.grad, q.grad) and not p.grad.any()


def test_bad_kernels_and_unsupported_states_are_refused():
    net = Net()
    with pytest.raises(ValueError, match="adam_kernel must be one of"):
        make_adam(net, 3e-4, "loop")
    with pytest.raises(ValueError, match="kernel must be one of"):
        Adam(net.parameters(), kernel="loop")
    amsgrad = torch.optim.Adam(net.parameters(), amsgrad=True).state_dict()
    with pytest.raises(ValueError, match="amsgrad"):
        ours(net, "fused").load_state_dict(amsgrad)
    body_only = torch.optim.Adam(net.body.parameters()).state_dict()
    with pytest.raises(ValueError, match="do not match"):
        ours(net, "fused").load_state_dict(body_only)


def test_make_adam_is_ours_with_the_release_epsilon():
    net = Net()
    for kernel in KERNELS:
        opt = make_adam(net, 3e-4, kernel)
        assert isinstance(opt, Adam)
        group = opt.param_groups[0]
        assert (group["lr"], group["eps"], group[kernel]) == (3e-4, 1e-5, True)
