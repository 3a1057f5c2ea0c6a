"""Sweep grids and plans: no Ray needed."""

import json

import pytest
import torch
from sweep_setup import ONE_TASK

from sphere_rl.config import ConfigError, build_config
from sphere_rl.continual.rundir import RunBusyError, run_lock
from sphere_rl.continual.runner import run_dir_name
from sphere_rl.sweep import SweepGrid, expand_grid, parse_names, parse_seeds, plan_runs
from sphere_rl.sweep.plan import plan_run
from sphere_rl.sweep.ray_runner import skipped_outcome, train_run


def test_parse_seeds_and_names():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("3, 0-1,1") == [3, 0, 1]
    for bad in ("a", "4-2", "-1", ""):
        with pytest.raises(ConfigError):
            parse_seeds(bad)
    assert parse_names(" ppo,topk_moe,,ppo ") == ["ppo", "topk_moe"]


def test_expand_grid_is_the_full_product():
    grid = SweepGrid(["ppo", "sphere"], [0, 1, 2], ["crl", "rl"], ["cw10"], {"preset": "quick"})
    configs = expand_grid(grid)
    assert len(configs) == grid.size == 12
    assert len({run_dir_name(c) for c in configs}) == 12
    assert {(c.method, c.protocol, c.seed) for c in configs} == {
        (m, p, s) for m in ("ppo", "sphere") for p in ("crl", "rl") for s in (0, 1, 2)
    }
    assert all(c.benchmark == "cw10" and c.steps_per_task == 20_000 for c in configs)


def test_expand_grid_reports_every_problem_before_running():
    grid = SweepGrid(["ppo"], [0], ["crl", "sometimes"], base={**ONE_TASK, "num_envs": -1})
    with pytest.raises(ConfigError) as err:
        expand_grid(grid)
    assert "protocol must be one of" in str(err.value) and "num_envs must be > 0" in str(err.value)


def _write_run(out, cfg, state, name=None):
    run = out / (name or run_dir_name(cfg))
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(cfg.to_dict()))
    (run / "status.json").write_text(json.dumps({"state": state, "global_step": 100}))
    return run


def test_plan_new_resume_skip_conflict(tmp_path):
    configs = expand_grid(SweepGrid(["ppo", "sphere", "topk_moe"], [0, 1], ["crl"], base=ONE_TASK))
    by_key = {(c.method, c.seed): c for c in configs}
    _write_run(tmp_path, by_key["ppo", 0], "finished")
    _write_run(tmp_path, by_key["ppo", 1], "running")
    _write_run(tmp_path, by_key["sphere", 0], "failed")
    changed = build_config({**by_key["sphere", 1].to_dict(), "lr": 1e-3})
    # Names carry the config hash, so a conflict is a directory edited or renamed by hand.
    _write_run(tmp_path, changed, "running", name=run_dir_name(by_key["sphere", 1]))
    actions = {(p.cfg.method, p.cfg.seed): p.action for p in plan_runs(configs, tmp_path)}
    assert actions == {
        ("ppo", 0): "skip", ("ppo", 1): "resume", ("sphere", 0): "skip",
        ("sphere", 1): "conflict", ("topk_moe", 0): "new", ("topk_moe", 1): "new",
    }  # fmt: skip
    # Runs not submitted still get an outcome: failures and conflicts count as failed.
    outcomes = {(o.method, o.seed): o for o in map(skipped_outcome, plan_runs(configs, tmp_path))}
    assert outcomes["ppo", 0].result == "skipped" and outcomes["ppo", 0].ok
    assert (
        outcomes["sphere", 0].result == "failed" and "--retry-failed" in outcomes["sphere", 0].error
    )
    assert (
        outcomes["sphere", 1].result == "failed"
        and "different configuration" in outcomes["sphere", 1].error
    )
    retried = plan_runs(configs, tmp_path, retry_failed=True)
    assert {p.cfg.seed: p.action for p in retried if p.cfg.method == "sphere"}[0] == "retry"
    # Two grid points that would share one directory are refused, not trained twice.
    twice = plan_runs([configs[0], configs[0]], tmp_path / "other")
    assert [p.action for p in twice] == ["new", "conflict"]


def test_run_lock_is_exclusive(tmp_path):
    with run_lock(tmp_path / "run"):
        with pytest.raises(RunBusyError), run_lock(tmp_path / "run"):
            pass
    with run_lock(tmp_path / "run"):  # released on exit
        pass


def test_task_body_reports_errors_instead_of_raising(tmp_path):
    cfg = build_config({**ONE_TASK, "method": "ppo"})
    run = _write_run(tmp_path, cfg, "running")
    (run / "run.json").write_text(json.dumps({"tasks": ["reach-v3"]}))
    (run / "checkpoints").mkdir()
    (run / "checkpoints/latest.pt").write_bytes(b"not a checkpoint")
    outcome = train_run(cfg.to_dict(), str(run), threads=torch.get_num_threads())
    assert outcome["result"] == "failed"
    assert (
        outcome["error"].startswith("RunFileError") and "latest.pt is damaged" in outcome["error"]
    )
    # A refusal is its one-line error; only a bug's outcome carries a traceback.
    assert "UnpicklingError" in outcome["error"] and outcome["traceback"] is None


def test_a_damaged_run_is_planned_as_a_conflict_not_overwritten(tmp_path):
    cfg = build_config({**ONE_TASK, "method": "ppo"})
    run = _write_run(tmp_path, cfg, "running")
    (run / "status.json").write_text('{"state": "runn')
    plan = plan_run(cfg, tmp_path)
    assert plan.action == "conflict" and not plan.submit
    assert "damaged" in plan.note and "status.json: cannot read it as JSON" in plan.note


def test_grid_validation_names_every_bad_point_with_a_suggestion():
    grid = SweepGrid(
        ["sphere", "sphre"], [0], ["crl", "both"], base={**ONE_TASK, "tasks": "hamer-v3"}
    )
    with pytest.raises(ConfigError) as err:
        expand_grid(grid)
    message = str(err.value)
    assert "unknown method 'sphre' (did you mean 'sphere'?)" in message
    assert "unknown task 'hamer-v3' (did you mean 'hammer-v3'?)" in message
    assert "protocol must be one of ('crl', 'rl'), got 'both'" in message
