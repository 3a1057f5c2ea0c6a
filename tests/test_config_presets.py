"""Presets: chosen by the benchmark or inferred from the tasks, and shown truthfully by ``sphere
train --help`` and ``sphere methods`` (issue #19)."""

import re

import pytest
import typer.main
from typer.testing import CliRunner

from sphere_rl import vocab
from sphere_rl.cli.app import _register_all, app
from sphere_rl.cli.flags import CONFIG_KEYS, preset_default, preset_values
from sphere_rl.config import CHOICES, FAMILY_PRESETS, PRESETS, ConfigError, build_config
from sphere_rl.envs.registry import BENCHMARKS
from sphere_rl.methods import COMPONENTS, METHODS, resolve_method

_register_all()


def test_every_benchmark_has_its_preset_and_cw20_is_cw10_twice():
    assert set(BENCHMARKS) <= set(PRESETS)
    cw10, cw20 = build_config({"benchmark": "cw10"}), build_config({"benchmark": "cw20"})
    assert cw20.preset == "cw20"
    assert {**cw10.to_dict(), "benchmark": "cw20", "preset": "cw20"} == cw20.to_dict()


@pytest.mark.parametrize("benchmark", ["cw10", "hb5"])
def test_a_task_list_gets_its_familys_preset(benchmark):
    tasks = ",".join(BENCHMARKS[benchmark][:2])
    inferred = build_config({"tasks": tasks, "benchmark": None})
    assert inferred.preset == benchmark
    explicit = build_config({"tasks": tasks, "benchmark": None, "preset": benchmark})
    assert inferred == explicit
    assert FAMILY_PRESETS["h1" if benchmark == "hb5" else "metaworld"] == benchmark


def test_metaworld_tasks_resolve_as_before():
    """Existing MetaWorld task-list runs keep their configuration (and so their config hash)."""
    without = build_config({"tasks": ["reach-v3"]}).to_dict()
    assert without == build_config({"tasks": ["reach-v3"], "preset": "cw10"}).to_dict()
    assert without["preset"] == "cw10" and without["rho"] == 0.05 and not without["norm_obs"]


def test_h1_tasks_get_hb5_not_cw10():
    cfg = build_config({"tasks": "h1-stand,h1-walk", "benchmark": None})
    assert (cfg.preset, cfg.num_envs, cfg.sphere_mode, cfg.rho, cfg.norm_obs) == (
        "hb5", 128, "grad", 1e-3, True)  # fmt: skip


def test_h1_task_names_are_checked_without_loading_metaworld():
    # MetaWorld's task list comes from importing metaworld (~30 MB resident, docs/benchmarks.md
    # "Memory per run"): an H1 run must not pay for it; a misspelt name still gets its hint.
    import subprocess
    import sys

    script = (
        "import sys; from sphere_rl.config import build_config, ConfigError\n"
        "build_config({'tasks': 'h1-stand,h1-walk', 'benchmark': None})\n"
        "print('metaworld' in sys.modules)\n"
        "try:\n    build_config({'tasks': 'h1-stand,hamer-v3', 'benchmark': None})\n"
        "except ConfigError as err:\n    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    loaded, error = out.stdout.split("\n", 1)
    assert loaded == "False"
    assert "unknown task 'hamer-v3' (did you mean 'hammer-v3'?)" in error


def test_tasks_of_two_presets_need_one_given():
    with pytest.raises(ConfigError, match="the tasks need different presets"):
        build_config({"tasks": "reach-v3,h1-stand"})
    assert build_config({"tasks": "reach-v3,h1-stand", "preset": "hb5"}).num_envs == 128


def test_config_choices_are_the_owners_lists():
    """Each vocabulary is defined once: the configuration validates against the owners' objects."""
    from sphere_rl.envs.h1.model import FOOT_COLLIDERS
    from sphere_rl.envs.vector import BACKENDS, VECTORIZATIONS
    from sphere_rl.nn.init import INIT_SCHEMES
    from sphere_rl.regularizers.combine import MODES
    from sphere_rl.regularizers.sphere import VARIANTS

    owned = {"sphere_mode": MODES, "sphere_variant": VARIANTS, "init": INIT_SCHEMES,
             "env_backend": BACKENDS, "vectorization": VECTORIZATIONS, "h1_feet": FOOT_COLLIDERS,
             "protocol": vocab.PROTOCOLS, "ppo10x_width": vocab.PPO10X_WIDTHS,
             "sphere_gate_scale": vocab.GATE_SCALES}  # fmt: skip
    for key, names in owned.items():
        assert CHOICES[key] is names, key


def _option_default(help_text: str, flag: str) -> str:
    """The ``[default: ...]`` of ``flag`` in ``--help`` output (wrapping undone)."""
    flat = " ".join(re.sub(r"[│╭╮╰╯─]", " ", help_text).split())
    match = re.search(re.escape(flag) + r" .*?\[default: (.*?)\]", flat)
    assert match, f"{flag} has no default shown"
    return match.group(1).strip("()")


def _shown(value) -> str:
    if isinstance(value, bool):
        return str(value)
    return (
        f"{value:,}"
        if isinstance(value, int)
        else f"{value:g}"
        if isinstance(value, float)
        else str(value)
    )


def _preset_keys() -> list[str]:
    """The keys of ``sphere train``'s flags that the presets set to different values (but the
    benchmark's: it chooses the preset)."""
    params = typer.main.get_command(app).commands["train"].params
    keys = [p.name for p in params if p.name in CONFIG_KEYS and p.name != "benchmark"]
    return [key for key in keys if len(set(map(repr, preset_values(key).values()))) > 1]


@pytest.mark.parametrize("method", list(METHODS))
def test_help_and_methods_show_what_each_preset_resolves_to(method, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one line per table row
    result = CliRunner().invoke(app, ["train", "--help"], terminal_width=400)
    assert result.exit_code == 0
    preset_keys = _preset_keys()
    assert set(preset_keys) >= {"rho", "sphere_mode", "steps_per_task", "num_envs"}
    for preset in PRESETS:
        cfg = build_config({"method": method, "preset": preset})
        for key in preset_keys:
            default = _option_default(result.output, "--" + key.replace("_", "-"))
            assert default == preset_default(key), key
            assert f"{preset}: {_shown(getattr(cfg, key))}" in default.split(", "), (key, preset)
        listed = CliRunner().invoke(app, ["methods", "--preset", preset], terminal_width=400)
        assert listed.exit_code == 0, listed.output
        row = next(ln for ln in listed.output.splitlines() if ln.startswith(f"│ {method} "))
        _, plugins = resolve_method(cfg)
        for key in (k for name in plugins for k in COMPONENTS[name].config_keys):
            assert f"{key}={getattr(cfg, key)}" in row, (preset, key, row)


def test_config_imports_nothing_above_it():
    import ast
    from pathlib import Path

    import sphere_rl.config as config

    tree = ast.parse(Path(config.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {
        a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names
    }
    ours = {m for m in imported if m and m.startswith("sphere_rl")}
    assert ours <= {"sphere_rl.vocab", "sphere_rl.envs.registry"}, ours
