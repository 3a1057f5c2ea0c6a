"""The plug-in API: registering methods, regularizers and interventions; loading plug-in modules."""

import subprocess
import sys
import textwrap

import pytest

import sphere_rl
from sphere_rl import methods
from sphere_rl.algo.hooks import TrainingCallback
from sphere_rl.config import build_config
from sphere_rl.plugins import PluginError, load_plugin, plugin_locations


@pytest.fixture(autouse=True)
def clean_registries(isolated_registries):
    """Every test registers into copies, so nothing leaks into other tests."""
    yield
    for name in [n for n in sys.modules if n.startswith("ux_plugin_")]:
        del sys.modules[name]


class SumOfMeans:
    name, mode, pcgrad = "sum_of_means", "fixed", False

    def __init__(self, coef):
        self.coef = coef

    def penalty(self, output, obs, agent):
        return output.mean.sum()


class CountSteps(TrainingCallback):
    def __init__(self):
        self.steps = 0

    def after_optimizer_step(self, agent):
        self.steps += 1


def test_registered_plugins_are_built_into_the_agent():
    sphere_rl.register_regularizer("sum_of_means", lambda cfg: SumOfMeans(cfg.rho), "x", "test")
    sphere_rl.register_intervention("count_steps", lambda cfg: CountSteps())
    spec = sphere_rl.register_method("mine", "topk_moe", "sum_of_means+count_steps")
    component = methods.COMPONENTS["sum_of_means"]
    assert methods.METHODS["mine"] == spec and (component.description, component.source) == (
        "x",
        "test",
    )
    cfg = build_config({"method": "mine", "hidden": [8], "n_experts": 3, "rho": 0.5})
    assert methods.resolve_method(cfg) == ("topk_moe", ["sum_of_means", "count_steps"])
    agent = methods.build_agent(cfg, obs_dim=5, act_dim=2)
    (reg,) = [r for r in agent.regularizers if isinstance(r, SumOfMeans)]
    (callback,) = [c for c in agent.callbacks if isinstance(c, CountSteps)]
    assert reg.coef == 0.5 and not isinstance(callback, SumOfMeans)
    # A built-in plug-in still combines with registered ones.
    cfg = build_config({"method": "mine", "reg": "sphere+count_steps", "hidden": [8]})
    assert methods.resolve_method(cfg) == ("topk_moe", ["sphere", "count_steps"])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: sphere_rl.register_method("Bad Name", "mlp"), "lower-case"),
        (lambda: sphere_rl.register_method("a+b", "mlp"), "lower-case"),
        (lambda: sphere_rl.register_method("none", "mlp"), "not 'none'"),
        (lambda: sphere_rl.register_method("ppo", "mlp"), "already registered"),
        (lambda: sphere_rl.register_method("x", "transformer"), "arch must be one of"),
        (lambda: sphere_rl.register_method("x", "mlp", "sphere+nope"), "unknown plug-in"),
        (lambda: sphere_rl.register_regularizer("cbp", SumOfMeans), "already registered"),
        (lambda: sphere_rl.register_intervention("sphere", CountSteps), "already registered"),
    ],
)
def test_bad_registrations_are_refused(call, message):
    before = (dict(methods.METHODS), dict(methods.COMPONENTS))
    with pytest.raises(ValueError, match=message):
        call()
    assert (methods.METHODS, methods.COMPONENTS) == before


def test_overwrite_replaces_a_plugin():
    sphere_rl.register_regularizer("thing", SumOfMeans)
    sphere_rl.register_intervention("thing", lambda cfg: CountSteps(), overwrite=True)
    assert methods.COMPONENTS["thing"].kind == "network edit"
    sphere_rl.register_method("ppo", "mlp_ln", overwrite=True)
    assert methods.METHODS["ppo"].arch == "mlp_ln"


def _write(path, body):
    path.write_text(textwrap.dedent(body))
    return path


def test_load_plugin_by_file_and_by_name(tmp_path, monkeypatch):
    body = """
        import sphere_rl
        sphere_rl.register_method("{name}", "mlp", "none")
    """
    _write(tmp_path / "ux_plugin_file.py", body.format(name="from_file"))
    module = load_plugin(str(tmp_path / "ux_plugin_file.py"))
    assert "from_file" in methods.METHODS and module.__name__ == "ux_plugin_file"
    assert load_plugin(str(tmp_path / "ux_plugin_file.py")) is module  # imported once

    # By name, from the current directory (the `sphere` script does not put it on sys.path).
    package = tmp_path / "ux_plugin_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    _write(package / "extra.py", body.format(name="from_package"))
    monkeypatch.chdir(tmp_path)
    sys.path[:] = [p for p in sys.path if p not in ("", str(tmp_path))]
    module = load_plugin("ux_plugin_pkg.extra")
    assert "from_package" in methods.METHODS
    assert plugin_locations([module]) == [("ux_plugin_pkg.extra", str(tmp_path))]


def test_plugin_errors_name_the_plugin(tmp_path):
    with pytest.raises(PluginError, match="plug-in 'ux_plugin_missing' not found"):
        load_plugin("ux_plugin_missing")
    with pytest.raises(PluginError, match="does not exist"):
        load_plugin(str(tmp_path / "nope.py"))
    broken = _write(tmp_path / "ux_plugin_broken.py", "import sphere_rl\n1 / 0\n")
    with pytest.raises(PluginError, match="failed to import: ZeroDivisionError"):
        load_plugin(str(broken))
    assert "ux_plugin_broken" not in sys.modules
    # A module that exists but imports something missing is broken, not "not found".
    _write(tmp_path / "ux_plugin_dep.py", "import ux_plugin_no_such_dependency\n")
    sys.path.append(str(tmp_path))
    with pytest.raises(PluginError, match="failed to import: ModuleNotFoundError"):
        load_plugin("ux_plugin_dep")


def test_another_process_imports_the_plugin_from_its_location(tmp_path):
    """What a Ray worker does with the driver's plug-in locations (a fresh interpreter)."""
    plugin = _write(tmp_path / "ux_plugin_remote.py", """
        import sphere_rl
        sphere_rl.register_method("remote_method", "dense_moe", "sphere")
    """)  # fmt: skip
    locations = plugin_locations([load_plugin(str(plugin))])
    code = (
        "import sys; from sphere_rl.plugins import import_plugin_locations;"
        f" import_plugin_locations({locations!r});"
        " from sphere_rl.methods import METHODS; print(METHODS['remote_method'].arch)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd="/", timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "dense_moe"


def test_lazy_top_level_api():
    assert sphere_rl.register_method is methods.register_method
    assert callable(sphere_rl.ContinualRunner.open) and callable(sphere_rl.load_plugins)
    with pytest.raises(AttributeError):
        _ = sphere_rl.no_such_thing
