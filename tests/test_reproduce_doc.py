"""``docs/reproduce.md``: every sweep command in it plans the number of runs the page states."""

import re
import shlex
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sphere_rl import methods
from sphere_rl.cli.app import _register_all, app

ROOT = Path(__file__).parents[1]
DOC = ROOT / "docs" / "reproduce.md"
_register_all()


@pytest.fixture(autouse=True)
def clean_registries(monkeypatch):
    for name in ("METHODS", "COMPONENTS"):
        monkeypatch.setattr(methods, name, dict(getattr(methods, name)))
    yield
    sys.modules.pop("sphere_ablation", None)  # registered into this test's registries only


def _sweeps() -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [shlex.split(line) for line in lines if line.startswith("sphere sweep")]


def test_every_sweep_plans_the_stated_number_of_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the page's paths are relative to the repository
    sweeps = _sweeps()
    # Sections 1-5 and "everything at once", as the page counts them.
    assert len(sweeps) == 6
    for argv, runs in zip(sweeps, [80, 80, 25, 25, 100, 200], strict=True):
        argv = [a if not a.startswith("runs/") else str(tmp_path / a) for a in argv]
        result = CliRunner().invoke(app, [*argv[1:], "--dry-run"], terminal_width=200)
        assert result.exit_code == 0, (argv, result.output)
        assert f"sweep: {runs} runs" in result.output, (argv, result.output[:300])
    assert not list(tmp_path.iterdir())


def test_the_ablation_plugin_builds_each_variant():
    from sphere_rl.config import build_config
    from sphere_rl.plugins import load_plugin
    from sphere_rl.regularizers.hooks import SphereRegularizer

    load_plugin(str(ROOT / "examples" / "sphere_ablation.py"))
    for variant in ("all_layers", "per_expert", "gradient_factor", "gate"):
        cfg = build_config(
            {"benchmark": "hb5", "method": f"sphere_{variant}", "hidden": [8], "n_experts": 3}
        )
        agent = methods.build_agent(cfg, obs_dim=6, act_dim=2)
        (reg,) = [r for r in agent.regularizers if isinstance(r, SphereRegularizer)]
        assert (reg.variant, reg.mode, reg.coef) == (variant, "grad", 1e-3)
