"""PPO follows the authors' release: KL rule, LR restarts, value loss, networks, presets.

Each rule is checked against an independent statement of it written here (a scripted KL sequence,
a plain reference PPO loop), not against numbers copied from the implementation.
"""

import copy
import json

import pytest
import torch
from torch import nn

from sphere_rl.algo.buffer import RolloutBuffer
from sphere_rl.config import ConfigError, build_config
from sphere_rl.continual.runner import ContinualRunner
from sphere_rl.methods import build_agent
from sphere_rl.nn.layers import ExpertLayerNorm


def release_rule(lr: float, kl: float, target: float) -> float:
    """The release's rule, spelled out independently of sphere_rl.algo.ppo."""
    if kl > 2 * target:
        lr = lr / 1.5
    elif kl < target / 2:
        lr = lr * 1.5
    return min(max(lr, 1e-5), 1e-2)


def scripted_update(agent, kls, epochs, minibatches):
    """Run agent.update with each minibatch step replaced by one reporting the next scripted KL;
    returns the learning rate in effect at every minibatch step."""
    used, script = [], iter(kls)

    def fake_step(*args):
        used.append(agent.learning_rate)
        return {"pg_loss": torch.tensor(0.0)}, next(script)

    agent._minibatch_step = fake_step
    n = 8 * minibatches
    buffer = RolloutBuffer.empty(n, 1, 4, 2, "cpu")
    agent.update(buffer, torch.zeros(n, 1), torch.zeros(n, 1))
    assert len(used) == epochs * minibatches
    return used


# Hits every branch: ×1.5 (KL ≈ 0), ÷1.5, unchanged in the band, both boundaries, the upper clip.
KLS = [0.0, 0.0, 0.2, 0.03, 0.06, 0.015, 0.001, 0.1] + [0.0] * 16


def test_kl_rule_adapts_after_every_minibatch_from_its_kl():
    cfg = build_config(
        {"method": "ppo", "preset": "hb5", "hidden": [4], "update_epochs": 3, "minibatch_size": 8}
    )
    assert (cfg.lr_schedule, cfg.kl_adapt_every, cfg.target_kl, cfg.lr) == (
        "kl_adaptive", "minibatch", 0.03, 3e-4,
    )  # fmt: skip
    agent = build_agent(cfg, 4, 2)
    used = scripted_update(agent, KLS, epochs=3, minibatches=8)
    expected = [3e-4]
    for kl in KLS[:-1]:
        expected.append(release_rule(expected[-1], kl, 0.03))
    assert used == pytest.approx(expected, rel=1e-12)
    assert max(expected) == 1e-2  # the clip was reached
    final = release_rule(expected[-1], KLS[-1], 0.03)
    assert agent.learning_rate == pytest.approx(final)
    assert agent.critic_optimizer.param_groups[0]["lr"] == agent.learning_rate


def test_kl_rule_per_epoch_option_uses_the_epoch_mean():
    cfg = build_config(
        {"method": "ppo", "preset": "hb5", "hidden": [4], "update_epochs": 3, "minibatch_size": 8,
         "kl_adapt_every": "epoch"}
    )  # fmt: skip
    agent = build_agent(cfg, 4, 2)
    used = scripted_update(agent, KLS, epochs=3, minibatches=8)
    lr, expected = 3e-4, []
    for epoch in range(3):
        expected += [lr] * 8
        lr = release_rule(lr, sum(KLS[8 * epoch : 8 * epoch + 8]) / 8, 0.03)
    assert used == pytest.approx(expected, rel=1e-12)


def test_every_schedule_restarts_at_a_task_and_kl_adaptive_has_no_linear_decay():
    cfg = build_config({"method": "ppo", "preset": "hb5", "hidden": [4]})
    agent = build_agent(cfg, 4, 2)
    agent.set_learning_rate(7e-3)  # adapted during task 1
    agent.schedule_learning_rate(0.9)
    assert agent.learning_rate == 7e-3  # the linear schedule is not applied
    agent.start_task()
    assert agent.learning_rate == 3e-4
    linear = build_agent(build_config({"method": "ppo", "hidden": [4]}), 4, 2)
    linear.schedule_learning_rate(0.75)
    assert linear.learning_rate == pytest.approx(3e-4 + 0.75 * (1e-4 - 3e-4))
    linear.start_task()
    assert linear.learning_rate == 3e-4


def reference_update(actor, critic, cfg, obs, actions, old_log_probs, adv, ret):
    """A plain PPO update as the release states it: population-std advantage normalisation,
    per-parameter (for-loop) Adam, ε 1e-5, clip 0.5, value loss vf_coef·MSE, per-minibatch KL
    rule from the pre-update KL."""
    lr = cfg.lr
    a_opt = torch.optim.Adam(actor.parameters(), lr, eps=1e-5, foreach=False)
    c_opt = torch.optim.Adam(critic.parameters(), lr, eps=1e-5, foreach=False)
    for _ in range(cfg.update_epochs):
        for idx in torch.randperm(obs.shape[0]).split(cfg.minibatch_size):
            a = adv[idx]
            a = (a - a.mean()) / (a.std(correction=0) + 1e-8)  # population std
            dist = actor(obs[idx]).distribution()
            log_ratio = dist.log_prob(actions[idx]).sum(-1) - old_log_probs[idx]
            ratio = log_ratio.exp()
            loss = torch.max(-a * ratio, -a * ratio.clamp(0.8, 1.2)).mean()
            kl = float(((ratio - 1) - log_ratio).mean().detach())
            a_opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(actor.parameters(), 0.5, foreach=False)
            a_opt.step()
            v_loss = cfg.vf_coef * (critic(obs[idx]) - ret[idx]).square().mean()
            c_opt.zero_grad()
            v_loss.backward()
            nn.utils.clip_grad_norm_(critic.parameters(), 0.5, foreach=False)
            c_opt.step()
            lr = release_rule(lr, kl, cfg.target_kl)
            for group in [*a_opt.param_groups, *c_opt.param_groups]:
                group["lr"] = lr
    return lr


@pytest.mark.parametrize(("arch", "kernel"), [("topk_moe", "foreach"), ("mlp", "foreach"),
                                             ("topk_moe", "fused")])  # fmt: skip
def test_update_equals_a_plain_reference_loop(arch, kernel):
    """Tensor statistics, foreach Adam and one host sync per minibatch change no number; fused
    Adam only rounds differently."""
    cfg = build_config(
        {"method": "ppo", "arch": arch, "preset": "hb5", "hidden": [16, 16], "n_experts": 4,
         "update_epochs": 3, "minibatch_size": 16, "adam_kernel": kernel}
    )  # fmt: skip
    torch.manual_seed(0)
    agent = build_agent(cfg, 5, 2)
    actor, critic = copy.deepcopy(agent.actor), copy.deepcopy(agent.critic)
    initial = [p.detach().clone() for p in agent.actor.parameters()]
    steps, envs = 16, 4
    buffer = RolloutBuffer.empty(steps, envs, 5, 2, "cpu")
    buffer.obs.normal_()
    buffer.actions.normal_()
    buffer.log_probs.normal_(-2.0, 0.5)
    buffer.values.normal_()
    adv, ret = torch.randn(steps, envs), torch.randn(steps, envs) * 3
    torch.manual_seed(1)
    stats = agent.update(buffer, adv, ret)
    torch.manual_seed(1)
    flat = lambda x: x.reshape(-1, x.shape[-1]) if x.dim() == 3 else x.reshape(-1)  # noqa: E731
    lr = reference_update(
        actor, critic, cfg, flat(buffer.obs), flat(buffer.actions), flat(buffer.log_probs),
        flat(adv), flat(ret),
    )  # fmt: skip
    for mine, ref in [(agent.actor, actor), (agent.critic, critic)]:
        for (name, p), q in zip(mine.named_parameters(), ref.parameters(), strict=True):
            if kernel == "foreach":
                assert torch.equal(p, q), name
            else:
                torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)
    assert stats["lr"] == pytest.approx(lr)
    moved = [not torch.equal(p, q) for p, q in zip(agent.actor.parameters(), initial, strict=True)]
    assert all(moved)


def test_value_loss_is_vf_coef_times_mse():
    # No clipping (it would normalise any constant factor away).
    cfg = build_config({"method": "ppo", "hidden": [8], "vf_coef": 0.5, "max_grad_norm": 1e9})
    agent = build_agent(cfg, 3, 1)
    obs, ret = torch.randn(10, 3), torch.randn(10)
    expected = torch.autograd.grad(
        0.5 * (agent.critic(obs) - ret).square().mean(), list(agent.critic.parameters())
    )
    agent._minibatch_step(obs, torch.zeros(10, 1), torch.zeros(10), torch.randn(10), ret)
    # The gradient Adam saw, from its first moment after one step: m = (1 − β1) g.
    for p, g in zip(agent.critic.parameters(), expected, strict=True):
        m = agent.critic_optimizer.state[p]["exp_avg"]
        torch.testing.assert_close(m / 0.1, g, rtol=1e-5, atol=1e-8)


def test_presets_follow_the_release():
    cw10 = build_config({"preset": "cw10"})
    assert (cw10.norm_obs, cw10.sphere_mode, cw10.rho, cw10.lr_schedule) == (
        False, "loss", 0.05, "linear",
    )  # fmt: skip
    hb5 = build_config({"preset": "hb5"})
    assert (hb5.norm_obs, hb5.sphere_mode, hb5.rho, hb5.target_kl, hb5.kl_adapt_every) == (
        True, "grad", 1e-3, 0.03, "minibatch",
    )  # fmt: skip
    assert cw10.carry_optimizer and hb5.carry_optimizer
    assert (cw10.sphere_gating_ratio, cw10.ppo10x_width, cw10.vf_coef) == (0.0, "release", 0.5)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sphere_gate_scale": "x"}, "sphere_gate_scale must be one of ('own', 'shared')"),
        ({"kl_adapt_every": "batch"}, "kl_adapt_every must be one of ('minibatch', 'epoch')"),
        ({"ppo10x_width": "x"}, "ppo10x_width must be one of ('release', 'param_matched')"),
        ({"adam_kernel": "loop"}, "adam_kernel must be one of ('foreach', 'fused')"),
        ({"sphere_gating_ratio": -1.0}, "sphere_gating_ratio must be >= 0"),
        ({"sphere_variant": "g"}, "'gradient_factor'"),
    ],
)
def test_new_keys_are_validated(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_config(overrides)
    for mode in ("grad", "loss", "fixed"):  # PCGrad runs in every mode, as in the release
        build_config({"pcgrad": True, "sphere_mode": mode})


def _widths(module):
    return [m.out_features for m in module.modules() if isinstance(m, nn.Linear)]


def test_ln_baseline_normalises_the_critic_and_ppo10x_widens_both_networks():
    ln = build_agent(build_config({"method": "ln"}), 39, 4)
    assert sum(isinstance(m, nn.LayerNorm) for m in ln.critic.modules()) == 3
    assert sum(isinstance(m, nn.LayerNorm) for m in ln.actor.modules()) == 3
    plain = build_agent(build_config({"method": "ppo"}), 39, 4)
    assert not any(isinstance(m, nn.LayerNorm) for m in plain.critic.modules())
    wide = build_agent(build_config({"method": "ppo10x"}), 39, 4)
    assert int(256 * 10**0.5 + 0.5) == 810
    assert _widths(wide.actor) == [810, 810, 810, 4]
    assert _widths(wide.critic) == [810, 810, 810, 1]
    matched = build_agent(
        build_config({"method": "ppo10x", "ppo10x_width": "param_matched"}), 39, 4
    )
    assert _widths(matched.actor)[0] not in (256, 810)
    assert _widths(matched.critic) == [256, 256, 256, 1]


@pytest.mark.parametrize("mode", ["grad", "loss"])
def test_gradient_factor_variant_trains_through_ppo(mode):
    """The per-sample losses reach the penalty inside a real update (double backward included)."""
    cfg = build_config(
        {"method": "sphere", "hidden": [8], "n_experts": 3, "sphere_variant": "gradient_factor",
         "sphere_mode": mode, "rho": 0.1, "sphere_gating_ratio": 0.5}
    )  # fmt: skip
    torch.manual_seed(0)
    agent = build_agent(cfg, 5, 2)
    obs, actions = torch.randn(32, 5), torch.randn(32, 2)
    stats, _ = agent._minibatch_step(
        obs, actions, torch.zeros(32) - 2, torch.randn(32), torch.randn(32)
    )
    assert float(stats["reg/sphere"]) > 0
    assert float(stats["reg/sphere_scale"]) > 0
    assert agent.sample_policy_loss is None  # published only during the penalty
    assert all(torch.isfinite(p).all() for p in agent.actor.parameters())


def test_a_non_finite_critic_loss_stops_before_either_network_steps():
    from sphere_rl.algo.ppo import NonFiniteLossError

    agent = build_agent(build_config({"method": "ppo", "hidden": [8]}), 3, 1)
    actor = copy.deepcopy(agent.actor)
    returns = torch.randn(10)
    returns[3] = float("nan")
    with pytest.raises(NonFiniteLossError, match="the critic loss became non-finite"):
        agent._minibatch_step(torch.randn(10, 3), torch.zeros(10, 1), torch.zeros(10),
                              torch.randn(10), returns)  # fmt: skip
    pairs = zip(agent.actor.parameters(), actor.parameters(), strict=True)
    assert all(torch.equal(p, q) for p, q in pairs)
    assert not agent.actor_optimizer.state  # no step was taken


@pytest.mark.parametrize("eps", [None, 1e-5])
@pytest.mark.parametrize("method", ["ln", "topk_moe_ln"])
def test_layer_norms_use_flax_epsilon_1e_6(method, eps):
    """Rows whose variance is near ε tell 1e-6 (Flax, the release, the default) apart from torch's
    1e-5 (``layer_norm_eps: 1e-5``, the earlier rule)."""
    overrides = {"method": method, "hidden": [6]} | ({} if eps is None else {"layer_norm_eps": eps})
    agent = build_agent(build_config(overrides), 5, 2)
    norms = [
        m
        for net in (agent.actor, agent.critic)
        for m in net.modules()
        if isinstance(m, nn.LayerNorm | ExpertLayerNorm)
    ]
    assert norms
    x = torch.tensor([[0.0, 1e-3, -1e-3, 2e-3, 0.0, -2e-3]], dtype=torch.float64)
    expected = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + (eps or 1e-6))
    for norm in norms:
        norm = norm.double()
        out = norm(x.expand(norm.weight.shape[0], -1, -1) if norm.weight.dim() == 2 else x)
        with torch.no_grad():
            plain = (out - _affine_bias(norm)) / _affine_weight(norm)
        torch.testing.assert_close(plain.reshape(-1, 6)[0], expected[0], rtol=1e-9, atol=1e-12)


def _affine_weight(norm):
    return norm.weight if norm.weight.dim() == 1 else norm.weight[:, None, :]


def _affine_bias(norm):
    return norm.bias if norm.bias.dim() == 1 else norm.bias[:, None, :]


@pytest.mark.parametrize("rule", ["after_rollout", "before_rollout"])
def test_linear_schedule_is_evaluated_after_each_rollout(tmp_path, rule):
    """The release's first iteration runs at lr + (steps after the rollout / task steps)·(lr_final −
    lr), e.g. 2.967e-4 for 16,384 of 1M steps, and its last at lr_final; ``lr_progress:
    before_rollout`` keeps the earlier rule (iteration / iterations: 3e-4 first)."""
    cfg = build_config(
        {"benchmark": None, "tasks": "reach-v3", "method": "ppo", "preset": "quick",
         "hidden": [8], "num_envs": 2, "num_steps": 25, "minibatch_size": 50,
         "update_epochs": 1, "steps_per_task": 200, "lr_schedule": "linear", "lr": 3e-4,
         "lr_final": 1e-4, "eval_interval": 10_000, "diag_interval": 10_000,
         "checkpoint_interval": 10_000, "eval_episodes": 1, "lr_progress": rule}
    )  # fmt: skip
    run_dir = tmp_path / "run"
    ContinualRunner.open(cfg, run_dir, show_progress=False).run()
    lrs = [
        r["lr"]
        for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
        if r.get("kind") == "train"
    ]
    shift = 1 if rule == "after_rollout" else 0
    expected = [3e-4 + (i + shift) / 4 * (1e-4 - 3e-4) for i in range(4)]
    assert lrs == pytest.approx(expected, rel=1e-12)
