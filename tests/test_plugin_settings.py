"""A plug-in's own settings: declared at registration, written ``<plug-in>.<key>``, defaulted and
recorded, validated, read by the factory, listed, and compared on resume."""

import json

import pytest

import sphere_rl
from sphere_rl import methods
from sphere_rl.config import ConfigError, build_config, config_diff, config_hash

SMALL = {"hidden": [8], "n_experts": 3}


class Scaled:
    name, mode, pcgrad = "scaled", "fixed", False

    def __init__(self, coef: float, square: bool) -> None:
        self.coef, self.square = coef, square

    def penalty(self, output, obs, agent):
        return output.mean.square().sum() if self.square else output.mean.sum()


def _register() -> None:
    sphere_rl.register_regularizer(
        "scaled",
        lambda cfg: Scaled(
            cfg.plugin_setting("scaled", "coef"), cfg.plugin_setting("scaled", "square")
        ),
        "x",
        "test",
        settings={
            "coef": sphere_rl.Setting(0.5, "weight", check=lambda v: v >= 0, valid=">= 0"),
            "square": sphere_rl.Setting(False),
        },
    )
    sphere_rl.register_method("uses_scaled", "mlp", "scaled")


@pytest.fixture(autouse=True)
def registered(isolated_registries):
    _register()


def test_defaults_are_filled_in_and_recorded():
    cfg = build_config({"method": "uses_scaled", **SMALL})
    assert cfg.plugin_settings == (("scaled.coef", 0.5), ("scaled.square", False))
    saved = cfg.to_dict()
    assert saved["scaled.coef"] == 0.5 and saved["scaled.square"] is False
    assert "plugin_settings" not in saved  # each setting is a key of its own
    assert build_config(json.loads(json.dumps(saved))) == cfg  # config.json round-trips
    # Settings belong to the run's identity; runs without plug-in settings keep theirs.
    changed = build_config({"method": "uses_scaled", "scaled.coef": 0.25, **SMALL})
    assert config_hash(changed.to_dict()) != config_hash(saved)
    assert config_diff(saved, changed.to_dict()) == ["scaled.coef"]
    plain = build_config({"method": "ppo", **SMALL})
    assert plain.plugin_settings == () and not [k for k in plain.to_dict() if "." in k]


def test_the_factory_sees_the_given_value():
    cfg = build_config({"method": "uses_scaled", "scaled.coef": 2, "scaled.square": True, **SMALL})
    assert cfg.plugin_setting("scaled", "coef") == 2.0
    assert isinstance(cfg.plugin_setting("scaled", "coef"), float)  # 2 and 2.0: one config
    agent = methods.build_agent(cfg, obs_dim=5, act_dim=2)
    (reg,) = agent.regularizers
    assert (reg.coef, reg.square) == (2.0, True)
    with pytest.raises(KeyError, match=r"no plug-in setting 'scaled\.nope'"):
        cfg.plugin_setting("scaled", "nope")
    # --reg puts a registered plug-in with settings on a built-in method too.
    cfg = build_config({"method": "ppo", "reg": "scaled", "scaled.coef": 0.1, **SMALL})
    assert dict(cfg.plugin_settings) == {"scaled.coef": 0.1, "scaled.square": False}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"scaled.coef": "big"}, "scaled.coef must be of type float, got 'big'"),
        ({"scaled.coef": True}, "scaled.coef must be of type float, got True"),
        ({"scaled.square": 1}, "scaled.square must be of type bool, got 1"),
        ({"scaled.coef": -1}, "scaled.coef must be >= 0, got -1.0"),
        ({"scaled.cof": 1.0}, "unknown plug-in setting 'scaled.cof' (did you mean 'scaled.coef'?)"),
        ({"nope.coef": 1.0}, "unknown plug-in setting 'nope.coef'"),
        ({"method": "ppo", "scaled.coef": 1.0},
         "scaled.coef is a setting of plug-in 'scaled', which method 'ppo' does not use"),
        ({"method": "uses_scaled", "reg": "none", "scaled.coef": 1.0},
         "which method 'uses_scaled' (reg 'none') does not use"),
    ],
)  # fmt: skip
def test_bad_settings_are_reported_with_the_other_problems(given, message):
    with pytest.raises(ConfigError) as err:
        build_config({"method": "uses_scaled", "seed": -1, **SMALL, **given})
    assert len(err.value.problems) == 2  # this one and the seed's: one pass reports everything
    assert any(message in problem for problem in err.value.problems), err.value.problems


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"Coef": sphere_rl.Setting(1.0)}, "setting key must be lower-case"),
        ({"a.b": sphere_rl.Setting(1.0)}, "setting key must be lower-case"),
        ({"coef": 1.0}, "must be declared as a Setting"),
        ({"coef": sphere_rl.Setting(None)}, "the default must be one of bool, int, float, str"),
        ({"coef": sphere_rl.Setting([1, 2])}, "the default must be one of"),
        ({"coef": sphere_rl.Setting(-1.0, check=lambda v: v >= 0, valid=">= 0")},
         "the default of other.coef must be >= 0, got -1.0"),
    ],
)  # fmt: skip
def test_malformed_settings_are_refused_at_registration(settings, message):
    before = dict(methods.COMPONENTS)
    with pytest.raises(ValueError, match=message):
        sphere_rl.register_regularizer("other", lambda cfg: None, settings=settings)
    assert methods.COMPONENTS == before
