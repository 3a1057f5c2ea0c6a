"""Run directory names: readable, stable, one directory per run identity; ``--dry-run`` takes the
real command's decision about the directory."""

import itertools
import json

from cli_helpers import TINY_RUN, invoke

from sphere_rl.config import RUNTIME_KEYS, build_config, config_hash
from sphere_rl.continual.rundir import atomic_write_json
from sphere_rl.continual.runner import ContinualRunner, run_dir_name
from sphere_rl.sweep.plan import plan_runs


def test_a_quick_run_and_a_full_run_have_different_directories():
    full, quick = build_config({"benchmark": "cw10"}), build_config({"preset": "quick"})
    assert run_dir_name(full).startswith("cw10-crl-sphere-s0-")
    assert run_dir_name(quick).startswith("cw10-quick-crl-sphere-s0-")
    assert run_dir_name(full) != run_dir_name(quick)
    # Stable: the same configuration, built again, names the same directory.
    assert run_dir_name(build_config({"preset": "quick"})) == run_dir_name(quick)


def test_two_configurations_never_share_a_directory():
    """Over a grid of configurations (presets, hyper-parameters, methods, seeds, tasks): names
    are equal exactly when the configurations are equal but for runtime keys."""
    grid = {
        "preset": [None, "quick", "hb5"],
        "method": ["sphere", "topk_moe"],
        "rho": [1e-3, 0.05],
        "seed": [0, 1],
        "lr": [3e-4, 1e-4],
        "tasks": [None, "reach-v3,push-v3"],
        "device": ["cpu", "cuda"],
    }
    by_name: dict[str, dict] = {}
    identities = set()
    for values in itertools.product(*grid.values()):
        overrides = {k: v for k, v in zip(grid, values, strict=True) if v is not None}
        if "tasks" in overrides:
            overrides["benchmark"] = None
        cfg = build_config(overrides)
        identity = json.dumps(
            {k: v for k, v in cfg.to_dict().items() if k not in RUNTIME_KEYS}, sort_keys=True
        )
        identities.add(identity)
        name = run_dir_name(cfg)
        assert by_name.setdefault(name, identity) == identity, name  # one identity per name
        assert name.endswith(config_hash(cfg.to_dict()))
    assert len(by_name) == len(identities) == len(list(itertools.product(*grid.values()))) // 2


def _make_run(tmp_path, **overrides):
    """A run directory as ``sphere train --config c.json --out runs`` creates it (no training)."""
    config = tmp_path / "c.json"
    config.write_text(json.dumps({**TINY_RUN, **overrides}))
    cfg = build_config({**TINY_RUN, **overrides})
    run_dir = tmp_path / "runs" / run_dir_name(cfg)
    ContinualRunner.open(cfg, run_dir, show_progress=False)
    return config, run_dir


def test_dry_run_says_what_the_real_command_does(tmp_path):
    config, run_dir = _make_run(tmp_path)
    out = str(tmp_path / "runs")
    fresh = invoke("train", "--config", str(config), "--seed", "7", "--out", out, "--dry-run")
    assert fresh.exit_code == 0 and "dry run (new run)" in fresh.text
    again = invoke("train", "--config", str(config), "--out", out, "--dry-run")
    assert again.exit_code == 0 and f"(resume a running run at step 0): {run_dir}" in again.text
    # A changed configuration: the dry run refuses with the real command's message.
    changed = ("train", "--resume", str(run_dir), "--rho", "0.5")
    dry, real = invoke(*changed, "--dry-run"), invoke(*changed)
    assert dry.exit_code == real.exit_code == 2
    assert "differing keys: rho" in dry.text and dry.text == real.text
    atomic_write_json(run_dir / "status.json", {"state": "finished", "global_step": 200})
    done = invoke("train", "--resume", str(run_dir), "--dry-run")
    assert done.exit_code == 0 and "already finished; nothing to do" in done.text


def test_runs_under_the_old_names_are_still_continued(tmp_path):
    """A run created before names carried the hash: --resume of its path, and re-running the
    same command, continue it; another configuration with that old name gets a new directory."""
    cfg = build_config(TINY_RUN)
    old = tmp_path / "runs" / "custom-reach-v3-crl-sphere-s0"  # the name such a run was given
    ContinualRunner.open(cfg, old, show_progress=False)
    config = tmp_path / "c.json"
    config.write_text(json.dumps(TINY_RUN))
    resumed = invoke("train", "--resume", str(old), "--dry-run")
    assert resumed.exit_code == 0 and f"(resume a running run at step 0): {old}" in resumed.text
    again = invoke("train", "--config", str(config), "--out", str(tmp_path / "runs"), "--dry-run")
    assert again.exit_code == 0 and f"(resume a running run at step 0): {old};" in again.text
    other = invoke("train", "--config", str(config), "rho=0.5", "--out", str(tmp_path / "runs"),
                   "--dry-run")  # fmt: skip
    assert other.exit_code == 0 and "dry run (new run)" in other.text
    assert f"{old};" not in other.text
    # A sweep finds it too.
    (planned,) = plan_runs([cfg], tmp_path / "runs")
    assert planned.run_dir == old.absolute() and planned.action == "resume"
