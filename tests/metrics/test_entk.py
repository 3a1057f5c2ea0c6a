"""The structured eNTK against brute-force Jacobian contractions (torch.func.jacrev, float64)."""

import pytest
import torch
from torch import nn
from torch.func import functional_call, jacrev

import sphere_rl.metrics.ntk as ntk_module
from sphere_rl.metrics import effective_rank, entk, entk_effective_rank
from sphere_rl.nn import DenseMoEActor, DSMoEActor, MLPActor, TopKMoEActor
from sphere_rl.nn.policy import PolicyOutput

OBS, ACT = 5, 3


def brute_force_entk(actor: nn.Module, obs: torch.Tensor, trace_outputs: bool = False):
    """``J Jᵀ`` with ``J`` from ``jacrev`` over every parameter (log_std has a zero Jacobian)."""
    params = {k: v.detach() for k, v in actor.named_parameters()}

    def mean(p):
        out = functional_call(actor, p, (obs,))
        return getattr(out, "mean", out)

    jac = jacrev(mean)(params)
    n, a = obs.shape[0], ACT
    rows = torch.cat([j.reshape(n * a, -1) for j in jac.values()], dim=1)
    kernel = rows @ rows.T
    if trace_outputs:
        kernel = kernel.view(n, a, n, a).diagonal(dim1=1, dim2=3).sum(-1)
    return kernel


def assert_kernel_close(actual, expected, rtol=1e-8):
    assert actual.shape == expected.shape
    scale = expected.abs().max()
    assert scale > 0
    error = float((actual - expected).abs().max() / scale)
    assert error < rtol, f"relative error {error:.3g}"


def perturbed(actor: nn.Module, seed: int, scale: float = 0.2) -> nn.Module:
    """float64 copy with non-trivial biases / norm affines / head weights (all enter K)."""
    actor = actor.double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in actor.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return actor


def make(kind: str, layer_norm: bool, activation: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    common = dict(hidden=(8, 6), layer_norm=layer_norm, activation=activation)
    if kind == "mlp":
        actor = MLPActor(OBS, ACT, **common)
    elif kind == "topk":
        actor = TopKMoEActor(OBS, ACT, n_experts=4, top_k=2, **common)
    elif kind == "topk1":
        actor = TopKMoEActor(OBS, ACT, n_experts=3, top_k=1, temperature=0.5, **common)
    elif kind == "dense":
        actor = DenseMoEActor(OBS, ACT, n_experts=3, **common)
    elif kind in ("ds_train", "ds_eval"):
        actor = DSMoEActor(OBS, ACT, n_experts=4, top_k=2, **common)
        actor.train(kind == "ds_train")
    else:
        raise ValueError(kind)
    return perturbed(actor, seed)


CASES = [
    ("mlp", False, "relu"),
    ("mlp", True, "relu"),
    ("mlp", False, "crelu"),
    ("mlp", True, "tanh"),
    ("topk", False, "relu"),
    ("topk", True, "relu"),
    ("topk", False, "crelu"),
    ("topk1", True, "tanh"),
    ("dense", False, "relu"),
    ("dense", True, "crelu"),
    ("ds_train", True, "relu"),
    ("ds_eval", True, "relu"),
    ("ds_eval", False, "crelu"),
]


@pytest.mark.parametrize(("kind", "layer_norm", "activation"), CASES)
@pytest.mark.parametrize(("seed", "n"), [(0, 1), (1, 9), (2, 21)])
def test_entk_matches_brute_force(kind, layer_norm, activation, seed, n):
    actor = make(kind, layer_norm, activation, seed)
    obs = torch.randn(n, OBS, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    assert_kernel_close(entk(actor, obs), brute_force_entk(actor, obs))
    assert_kernel_close(entk(actor, obs, True), brute_force_entk(actor, obs, True))


@pytest.mark.parametrize("tile", [1, 3, 16])
@pytest.mark.parametrize("kind", ["topk", "dense", "ds_eval"])
def test_entk_tiling_of_expert_pairs(monkeypatch, tile, kind):
    """Several tiles per expert (off-diagonal tile pairs and their mirrored blocks) and padding."""
    monkeypatch.setattr(ntk_module, "_TILE", tile)
    actor = make(kind, layer_norm=True, activation="relu", seed=3)
    obs = torch.randn(26, OBS, dtype=torch.float64)
    for trace in (False, True):
        assert_kernel_close(entk(actor, obs, trace), brute_force_entk(actor, obs, trace))


@pytest.mark.parametrize("trace", [False, True])
def test_entk_with_experts_never_selected(trace):
    """A crafted gate bias routes every state to experts 0 and 2 only."""
    torch.manual_seed(4)
    actor = perturbed(TopKMoEActor(OBS, ACT, n_experts=5, top_k=2, hidden=(8, 6)), 4)
    with torch.no_grad():
        actor.gate_head.bias.copy_(torch.tensor([30.0, -30.0, 31.0, -30.0, -30.0]))
    obs = torch.randn(19, OBS, dtype=torch.float64)
    probs = actor(obs).probs
    assert torch.all(probs[:, [1, 3, 4]] == 0) and torch.all(probs[:, [0, 2]] > 0)
    assert_kernel_close(entk(actor, obs, trace), brute_force_entk(actor, obs, trace))


def test_entk_with_large_temperature_spread():
    torch.manual_seed(5)
    actor = perturbed(
        TopKMoEActor(OBS, ACT, n_experts=6, top_k=3, hidden=(7,), temperature=0.05), 5
    )
    obs = 3 * torch.randn(17, OBS, dtype=torch.float64)
    assert_kernel_close(entk(actor, obs), brute_force_entk(actor, obs))


# ---- the generic fallback -----------------------------------------------------------------------


class Gain(nn.Module):
    """A module type the structured path does not know: a learnable per-feature gain."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.linspace(0.5, 1.5, width))

    def forward(self, x):
        return x * self.gain


class ShiftedLinear(nn.Linear):
    """A subclass of a known type with a different forward: must not take the nn.Linear rule."""

    def forward(self, x):
        return super().forward(x) + 0.5 * x[..., : self.out_features] ** 2


class CustomActor(MLPActor):
    def __init__(self) -> None:
        super().__init__(OBS, ACT, hidden=(8, 6))
        self.gain = Gain(6)
        self.head = ShiftedLinear(6, ACT)

    def forward(self, obs):
        hidden = self.trunk(obs)
        mean = self.head(self.gain(hidden[-1]))
        return PolicyOutput(mean=mean, log_std=self.log_std, hidden=hidden)


class SharedLayerActor(MLPActor):
    """The same nn.Linear applied twice, plus a weight tied between two modules."""

    def __init__(self) -> None:
        super().__init__(OBS, ACT, hidden=(6, 6))
        self.again = nn.Linear(6, 6)
        self.tied = nn.Linear(6, ACT)
        self.tied.weight = self.head.weight

    def forward(self, obs):
        h = self.trunk(obs)[-1]
        h = torch.tanh(self.again(torch.tanh(self.again(h))))
        return PolicyOutput(mean=self.head(h) + self.tied(h**2), log_std=self.log_std, hidden=[h])


@pytest.mark.parametrize("cls", [CustomActor, SharedLayerActor])
@pytest.mark.parametrize("trace", [False, True])
def test_entk_fallback_for_unknown_or_reused_modules(cls, trace):
    torch.manual_seed(6)
    actor = perturbed(cls(), 6)
    obs = torch.randn(11, OBS, dtype=torch.float64)
    assert_kernel_close(entk(actor, obs, trace), brute_force_entk(actor, obs, trace))


def test_custom_parameters_contribute():
    """Dropping the fallback would lose the unknown modules' share of K (so the test can fail)."""
    torch.manual_seed(7)
    actor = perturbed(CustomActor(), 7)
    obs = torch.randn(6, OBS, dtype=torch.float64)
    full = entk(actor, obs)
    params = {k: v.detach() for k, v in actor.named_parameters()}
    jac = jacrev(lambda p: functional_call(actor, p, (obs,)).mean)(params)
    custom = [jac[k].reshape(6 * ACT, -1) for k in ("gain.gain", "head.weight", "head.bias")]
    custom = torch.cat(custom, dim=1)
    share = custom @ custom.T
    assert float(share.abs().max()) > 1e-3 * float(full.abs().max())


@pytest.mark.parametrize("trace", [False, True])
def test_unstructured_path_matches_brute_force(trace):
    actor = make("topk", True, "relu", 8)
    obs = torch.randn(7, OBS, dtype=torch.float64)
    kernel = entk(actor, obs, trace, structured=False)
    assert_kernel_close(kernel, brute_force_entk(actor, obs, trace))


class BatchNormActor(MLPActor):
    """Couples states through batch statistics: breaks the structured path's assumption."""

    def __init__(self) -> None:
        super().__init__(OBS, ACT, hidden=(8,))
        self.bn = nn.BatchNorm1d(8, track_running_stats=False)

    def forward(self, obs):
        h = torch.relu(self.bn(self.trunk.linears[0](obs)))
        return PolicyOutput(mean=self.head(h), log_std=self.log_std, hidden=[h])


def test_verification_catches_coupled_states():
    torch.manual_seed(9)
    actor = perturbed(BatchNormActor(), 9)
    obs = torch.randn(10, OBS, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="structured=False"):
        entk(actor, obs)
    assert_kernel_close(entk(actor, obs, structured=False), brute_force_entk(actor, obs))


# ---- side effects, dtypes, effective rank -------------------------------------------------------


def test_entk_leaves_actor_untouched():
    actor = make("ds_eval", True, "relu", 10)
    obs = torch.randn(8, OBS, dtype=torch.float64)
    before = {k: v.clone() for k, v in actor.state_dict().items()}
    with torch.no_grad():  # also checks that entk re-enables autograd internally
        kernel = entk(actor, obs)
    assert not actor.training
    assert all(p.grad is None for p in actor.parameters())
    assert all(torch.equal(before[k], v) for k, v in actor.state_dict().items())
    assert not kernel.requires_grad
    torch.testing.assert_close(kernel, kernel.T, rtol=0, atol=0)


def test_float32_matches_float64_and_effective_rank():
    actor = make("topk", False, "relu", 11)
    obs = torch.randn(12, OBS, dtype=torch.float64)
    k64 = entk(actor, obs)
    actor32 = actor.float()
    k32 = entk(actor32, obs.float())
    assert k32.dtype == torch.float32
    assert_kernel_close(k32.double(), k64, rtol=1e-5)
    r32 = entk_effective_rank(actor32, obs.float())
    r64 = effective_rank(k64)
    assert abs(r32 - r64) < 1e-3 * r64
    assert 1.0 <= r64 <= obs.shape[0] * ACT
