"""Metric definitions against hand-computed answers."""

import numpy as np
import pytest
from synthetic_runs import CRL_CURVES, CRL_MATRIX, STEPS_PER_TASK, write_run

from sphere_rl.analysis import continual_metrics as cm
from sphere_rl.analysis.runs import find_runs, load_run
from sphere_rl.analysis.summary import compute_run_metrics, summarize, task_aucs


def test_average_success_performance_and_forgetting():
    assert cm.average_success(CRL_MATRIX) == pytest.approx((0.8 + 0.9 + 1.0) / 3)
    assert cm.average_performance(CRL_MATRIX) == pytest.approx((0.4 + 0.7 + 1.0) / 3)
    np.testing.assert_allclose(cm.forgetting_per_task(CRL_MATRIX), [0.8 - 0.4, 0.9 - 0.7])
    assert cm.forgetting(CRL_MATRIX) == pytest.approx(0.3)
    # RL evaluates only the task being trained: the paper's metric still works, CW's do not.
    rl = np.diag([0.5, 0.7])
    rl[rl == 0] = np.nan
    assert cm.average_success(rl) == pytest.approx(0.6)
    assert np.isnan(cm.average_performance(rl))


def test_curve_auc():
    # Evenly spaced up to the end: the mean of the evaluations.
    steps = np.array([100, 200, 300, 400])
    assert cm.curve_auc(steps, np.array([0.2, 0.4, 0.6, 0.8]), 400) == pytest.approx(0.5)
    # Uneven: each evaluation covers the interval since the previous one.
    auc = cm.curve_auc(np.array([100, 250, 400]), np.array([0.2, 0.5, 1.0]), 400)
    assert auc == pytest.approx((0.2 * 100 + 0.5 * 150 + 1.0 * 150) / 400)
    # A task cut short has no AUC.
    assert np.isnan(cm.curve_auc(np.array([100, 200]), np.array([0.1, 0.2]), 400))


def test_forward_transfer():
    auc, ref = np.array([0.5, 0.75, 0.375]), np.array([0.5, 0.3, 0.5])
    expected = [0.0, (0.75 - 0.3) / 0.7, (0.375 - 0.5) / 0.5]
    np.testing.assert_allclose(cm.forward_transfer_per_task(auc, ref), expected)
    assert cm.forward_transfer(auc, ref) == pytest.approx(np.mean(expected))
    # A reference that solved the task at once leaves no room: undefined, left out of the mean.
    per_task = cm.forward_transfer_per_task(np.array([0.9, 0.5]), np.array([1.0, 0.0]))
    assert np.isnan(per_task[0]) and per_task[1] == pytest.approx(0.5)
    assert cm.forward_transfer(np.array([0.9, 0.5]), np.array([1.0, 0.0])) == pytest.approx(0.5)


def test_run_metrics_from_run_directories(crl_and_rl):
    _, crl_dir, rl_dir = crl_and_rl
    crl, rl = load_run(crl_dir), load_run(rl_dir)
    assert crl.steps_per_task == STEPS_PER_TASK
    # Curves: periodic 100/200/300 plus the task end; other tasks' periodic evals are ignored.
    np.testing.assert_allclose(task_aucs(crl), [0.5, 0.75, 0.375])
    np.testing.assert_allclose(task_aucs(rl), [0.5, 0.3, 0.5])
    m = compute_run_metrics(crl, "sphere", rl)
    assert m.average_success == pytest.approx(0.9)
    assert m.average_performance == pytest.approx(0.7)
    assert m.forgetting == pytest.approx(0.3)
    assert m.forward_transfer == pytest.approx((0.0 + 0.45 / 0.7 - 0.25) / 3)
    assert m.rank_final == 8 and m.rank_min == 7
    r = compute_run_metrics(rl, "sphere", None)
    assert r.average_success == pytest.approx(0.8)
    assert np.isnan(r.average_performance) and np.isnan(r.forgetting)
    assert np.isnan(r.forward_transfer)


def test_summary_matches_references_and_keeps_partial_runs_apart(crl_and_rl):
    root, _, _ = crl_and_rl
    # A second seed without an RL reference, and an interrupted third seed.
    write_run(root, seed=1, matrix=CRL_MATRIX * 0.5, curves=CRL_CURVES, ranks=[5, 4])
    write_run(root, seed=2, matrix=CRL_MATRIX, curves=CRL_CURVES, state="running", tasks_done=1)
    summary = summarize(find_runs(root), reps=500)
    by_protocol = {e.protocol: e for e in summary.experiments}
    crl = by_protocol["crl"]
    assert crl.seeds == [0, 1]
    assert crl.intervals["average_success"].mean == pytest.approx((0.9 + 0.45) / 2)
    # FT only for seed 0 (the one with a reference).
    assert crl.intervals["forward_transfer"].n == 1
    assert any("no finished RL run for seed(s) [1]" in n for n in summary.notes)
    (partial,) = summary.partial
    assert partial.run.seed == 2 and partial.run.tasks_done == 1
    assert partial.average_success == pytest.approx(0.8)  # task 0 only
    assert np.isnan(partial.forgetting)


def test_method_variants_are_not_pooled(tmp_path):
    for rho in (0.001, 0.01):
        write_run(tmp_path, matrix=CRL_MATRIX, curves=CRL_CURVES, extra={"rho": rho})
    write_run(tmp_path, method="ppo", matrix=CRL_MATRIX, curves=CRL_CURVES)
    labels = [e.label for e in summarize(find_runs(tmp_path), reps=100).experiments]
    assert labels == ["ppo", "sphere (rho=0.001)", "sphere (rho=0.01)"]
