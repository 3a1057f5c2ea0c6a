"""Diagnostics on a probe batch fixed for the whole run (``diag_fixed_probe``): built from an equal
share of every task's own probe stream, logged under ``fixed/`` next to the per-task probe."""

import numpy as np
import pytest

from sphere_rl.config import build_config
from sphere_rl.continual.evaluation import probe_states
from sphere_rl.continual.rundir import read_jsonl
from sphere_rl.continual.runner import ContinualRunner
from sphere_rl.continual.seeding import PROBE_STREAM, derive_seed
from sphere_rl.metrics import plasticity_report


def test_fixed_probe_is_every_tasks_share_and_is_logged(tmp_path, tiny_overrides):
    cfg = build_config({**tiny_overrides, "diag_fixed_probe": True, "diag_samples": 9})
    runner = ContinualRunner.open(cfg, tmp_path / "run", show_progress=False)
    runner.run()
    # Oracle: 9 states over 2 tasks → shares of 4 and 5 (rounded linspace), each from its task's
    # own probe stream.
    expected = np.concatenate(
        [
            probe_states(task, share, derive_seed(cfg.seed, PROBE_STREAM, j))
            for j, (task, share) in enumerate(zip(runner.tasks, (4, 5), strict=True))
        ]
    )
    np.testing.assert_array_equal(runner._fixed_probe(), expected)
    diags = [r for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "diag"]
    assert {r["task_index"] for r in diags} == {0, 1}
    for record in diags:
        assert "entk/effective_rank" in record and "fixed/entk/effective_rank" in record
        assert "fixed/proxy/effective_rank" in record
    # The last record's fixed-probe rank is the final actor's rank on those states.
    report = plasticity_report(runner.agent.actor, runner.agent.obs_tensor(expected))
    assert diags[-1]["fixed/entk/effective_rank"] == pytest.approx(
        report["entk/effective_rank"], rel=1e-9
    )


def test_fixed_probe_off_by_default(tmp_path, tiny_overrides):
    cfg = build_config({**tiny_overrides, "steps_per_task": 200, "tasks": "reach-v3"})
    ContinualRunner.open(cfg, tmp_path / "run", show_progress=False).run()
    diags = [r for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "diag"]
    assert diags and not any(k.startswith("fixed/") for r in diags for k in r)
