"""The release's initialisation (Flax lecun_normal, zero biases) as applied by build_agent."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from sphere_rl.config import CHOICES, build_config
from sphere_rl.envs import make_env
from sphere_rl.envs.registry import CW10
from sphere_rl.methods import build_agent
from sphere_rl.nn import ExpertLinear, MLPActor, TopKMoEActor
from sphere_rl.nn.init import INIT_SCHEMES, initialize_, lecun_normal_, truncated_unit_normal_std

OBS_DIM, ACT_DIM = 39, 4
DRAWS = 150


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # PPO-sized networks; avoids oversubscribing shared cores
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def agent():
    """The paper's SPHERE agent (10 experts of 3×256, gate, critic) built as training builds it."""
    torch.manual_seed(0)
    return build_agent(build_config({"preset": "cw10", "method": "sphere"}), OBS_DIM, ACT_DIM)


def _linear_layers(agent):
    for network in (agent.actor, agent.critic):
        for name, layer in network.named_modules():
            if isinstance(layer, nn.Linear | ExpertLinear):
                yield name, layer


def test_truncated_unit_normal_std_matches_numerical_integration():
    # Independent oracle: integrate z² φ(z) over [-2, 2] and normalise by the mass.
    z = np.linspace(-2.0, 2.0, 200_001)
    density = np.exp(-0.5 * z**2)
    variance = np.trapezoid(z**2 * density, z) / np.trapezoid(density, z)
    assert truncated_unit_normal_std() == pytest.approx(math.sqrt(variance), rel=1e-8)
    assert truncated_unit_normal_std() == pytest.approx(0.87962566103423978, rel=1e-12)  # Flax


def test_paper_presets_and_default_use_release_init():
    assert CHOICES["init"] == INIT_SCHEMES
    for preset in ("cw10", "hb5"):
        assert build_config({"preset": preset}).init == "release"
    with pytest.raises(ValueError, match="init must be one of"):
        build_config({"init": "xavier"})
    with pytest.raises(ValueError, match="init must be one of"):
        initialize_(MLPActor(3, 2), "xavier")


def test_every_layer_has_lecun_std_zero_bias_and_2_sigma_truncation(agent):
    layers = list(_linear_layers(agent))
    # 3 expert layers + expert head, 3 gate layers + gate head, 3 critic layers + value head.
    assert len(layers) == 12
    for name, layer in layers:
        w = layer.weight.detach().double().flatten()
        n = w.numel()
        target = 1.0 / math.sqrt(layer.in_features)
        # Sample std of n i.i.d. draws: relative error ~ 1/sqrt(2n) (a bit less when truncated).
        assert w.std().item() == pytest.approx(target, rel=5.0 / math.sqrt(2 * n)), name
        assert abs(w.mean().item()) < 5.0 * target / math.sqrt(n), name
        sigma = target / truncated_unit_normal_std()
        assert w.abs().max().item() <= 2.0 * sigma + 1e-7, name
        assert torch.count_nonzero(layer.bias).item() == 0, name
        if n >= 50_000:  # the tails are populated right up to the truncation point
            assert w.abs().max().item() > 0.98 * 2.0 * sigma, name
    assert torch.count_nonzero(agent.actor.log_std).item() == 0


def test_weights_follow_the_truncated_normal_distribution(agent):
    weight = agent.actor.experts.linears[1].weight.detach().double()  # (E, 256, 256)
    sigma = 1.0 / (math.sqrt(256) * truncated_unit_normal_std())
    sample = weight.flatten()[:200_000].numpy()
    truncated = stats.truncnorm(-2.0, 2.0, scale=sigma)
    assert stats.kstest(sample, truncated.cdf).pvalue > 1e-3
    # A plain (untruncated) normal of the same variance is rejected by the same test.
    assert stats.kstest(sample, stats.norm(scale=1 / 16).cdf).pvalue < 1e-6


def test_experts_get_independent_draws_in_one_batched_call():
    layer = ExpertLinear(10, 64, 32, gain=1.0)
    torch.manual_seed(0)
    lecun_normal_(layer.weight, 64)
    w = layer.weight.detach().reshape(10, -1)
    corr = torch.corrcoef(w.double())
    off_diagonal = corr[~torch.eye(10, dtype=bool)]
    # Independent experts: correlations of 2048 paired draws are O(1/sqrt(2048)) = 0.022.
    assert off_diagonal.abs().max().item() < 5.0 / math.sqrt(w.shape[1])
    # Each expert has the full variance (not a shared draw rescaled per expert).
    assert torch.allclose(w.std(dim=1), torch.full((10,), 1 / 8.0), rtol=0.1)


def test_orthogonal_scheme_keeps_construction_init():
    torch.manual_seed(3)
    built = MLPActor(OBS_DIM, ACT_DIM)
    before = {k: v.clone() for k, v in built.state_dict().items()}
    initialize_(built, "orthogonal")
    for key, value in built.state_dict().items():
        assert torch.equal(value, before[key]), key
    w = built.trunk.linears[1].weight.detach()
    assert torch.allclose(w @ w.T, 2.0 * torch.eye(256), atol=1e-4)  # orthogonal, gain √2


def _metaworld_states(count_per_seed: int = 20, seeds: int = 4) -> torch.Tensor:
    env = make_env(CW10[0], seed=0)
    rng = np.random.default_rng(0)
    states = []
    try:
        for seed in range(seeds):
            obs, _ = env.reset(seed=seed)
            for _ in range(count_per_seed):
                states.append(obs)
                obs, *_ = env.step(rng.uniform(-1, 1, size=ACT_DIM).astype(np.float32))
    finally:
        env.close()
    return torch.as_tensor(np.stack(states), dtype=torch.float32)


def test_gate_logit_scale_on_metaworld_observations_follows_from_the_init(agent):
    """Zero biases and symmetric weights give E[z²] = |h|²/fan_in and E[relu(z)²] = E[z²]/2 at
    every layer, so after three ReLU layers the gate logits have E[logit²] = mean(x²) / 2³."""
    x = _metaworld_states()  # raw 39-d observations (the release's base config: no normalisation)
    expected = math.sqrt((x.double() ** 2).mean().item() / 2**3)
    actor = agent.actor

    def logit_rms() -> float:
        logits = actor.gate_head(actor.gate(x)[-1])  # what forward() routes on
        return logits.detach().double().pow(2).mean().sqrt().item()

    # The expectation over draws: re-initialise the built actor's gate (trunk and logits layer).
    torch.manual_seed(1)
    second_moments = []
    for _ in range(DRAWS):
        initialize_(actor.gate, "release")
        initialize_(actor.gate_head, "release")
        second_moments.append(logit_rms() ** 2)
    release = math.sqrt(np.mean(second_moments))
    # One draw's mean logit² has a relative spread of ~0.45 (10 logits of nearly collinear
    # states), so the mean of 150 draws is within ±2% (1σ) of its expectation on the RMS scale.
    assert release == pytest.approx(expected, rel=0.1)
    initialize_(actor.gate, "release")  # the agent fixture is shared: leave a valid gate behind
    torch.manual_seed(0)
    orthogonal = TopKMoEActor(OBS_DIM, ACT_DIM)  # built with the orthogonal convention
    rms_orthogonal = orthogonal(x).logits.detach().double().pow(2).mean().sqrt().item()
    # Orthogonal init with its 0.01 gating head: logits two orders of magnitude smaller.
    assert rms_orthogonal < expected / 30
    print(f"gate logit std on {CW10[0]} obs: release {release:.3f} (expected {expected:.3f})")
    print(f"orthogonal {rms_orthogonal:.4f}")
