"""Every method and plug-in is registered, documented, builds on dense and MoE actors, combines,
and resumes exactly from a checkpoint."""

import copy

import pytest
import torch
from intervention_helpers import OBS_DIM, random_rollout, small_agent
from typer.testing import CliRunner

from sphere_rl.config import ConfigError, build_config
from sphere_rl.methods import COMPONENTS, METHODS

BASELINES = ("topk_moe_ln", "pw", "cbp", "cchain", "redo", "snp", "l2_init")
ALL_PLUGINS = "parseval+cchain+l2_init+cbp+redo+snp"


def test_every_plugin_is_described_and_every_baseline_is_a_method():
    for name, component in COMPONENTS.items():
        assert component.name == name and component.description and component.source != "-"
    assert set(BASELINES) <= set(METHODS)


@pytest.mark.parametrize("method", BASELINES)
@pytest.mark.parametrize("arch", [None, "topk_moe", "mlp_ln", "ds_moe"])
def test_each_method_updates_dense_and_moe_actors(method, arch):
    agent = small_agent(arch or METHODS[method].arch, METHODS[method].reg, method=method)
    before = [p.clone() for p in agent.actor.parameters()]
    stats = agent.update(*random_rollout(agent))
    assert all(torch.isfinite(torch.as_tensor(v)) for v in stats.values())
    assert any(not torch.equal(b, p) for b, p in zip(before, agent.actor.parameters(), strict=True))


def _train(agent, seed: int) -> None:
    agent.update(*random_rollout(agent, seed=seed))


def test_all_plugins_together_resume_exactly_from_a_checkpoint():
    fast = {"cbp_maturity": 2, "cbp_replacement_rate": 0.2, "redo_period": 3, "redo_tau": 0.5}
    agent = small_agent("topk_moe", f"sphere+{ALL_PLUGINS}", **fast)
    _train(agent, seed=1)
    checkpoint, rng = copy.deepcopy(agent.state_dict()), torch.get_rng_state()  # as saved to disk
    _train(agent, seed=2)
    expected = [p.detach().clone() for p in agent.actor.parameters()]

    torch.manual_seed(123)  # a different initialisation, replaced by the checkpoint
    resumed = small_agent("topk_moe", f"sphere+{ALL_PLUGINS}", **fast)
    resumed.load_state_dict(checkpoint)
    torch.set_rng_state(rng)
    _train(resumed, seed=2)
    for e, p in zip(expected, resumed.actor.parameters(), strict=True):
        torch.testing.assert_close(p, e, rtol=0, atol=0)
    obs = torch.randn(5, OBS_DIM)
    torch.testing.assert_close(resumed.critic(obs), agent.critic(obs), rtol=0, atol=0)


def test_config_validation_of_intervention_fields():
    bad = {"cbp_decay": 1.5, "redo_period": 0, "sp_shrink": -0.1, "parseval_coef": -1.0,
           "cchain_window": 0, "cbp_maturity": -1}  # fmt: skip
    with pytest.raises(ConfigError) as err:
        build_config(bad)
    for key in bad:
        assert key in str(err.value)
    with pytest.raises(ValueError, match="unknown reg 'nope'"):
        small_agent("mlp", "cbp+nope")


def test_methods_command_lists_every_method_and_plugin():
    from sphere_rl.cli.app import _register_all, app

    _register_all()
    result = CliRunner().invoke(app, ["methods"])
    assert result.exit_code == 0, result.output
    for name in [*METHODS, *COMPONENTS]:
        assert name in result.output
    for spec in METHODS.values():
        assert spec.source in result.output
