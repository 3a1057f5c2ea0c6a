"""Reading run directories back: ``train`` records of older runs get this version's key names."""

import json

from synthetic_runs import CRL_CURVES, CRL_MATRIX, write_run

from sphere_rl.analysis.runs import current_train_names, load_run


def test_old_runs_penalty_scale_is_read_under_its_new_name(tmp_path):
    run_dir = write_run(tmp_path, matrix=CRL_MATRIX, curves=CRL_CURVES)
    old = {"kind": "train", "global_step": 100, "reg/sphere": 0.5, "reg/sphere_coef": 0.01,
           "reg/sphere_cos": -0.1, "reg/sphere_gate": 0.2, "reg/sphere_gate_coef": 0.03}  # fmt: skip
    new = {"kind": "train", "global_step": 200, "reg/sphere": 0.4, "reg/sphere_scale": 0.02}
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(old) + "\n" + json.dumps(new) + "\n")
    first, second = load_run(run_dir).train
    assert first == {"kind": "train", "global_step": 100, "reg/sphere": 0.5,
                     "reg/sphere_scale": 0.01, "reg/sphere_cos": -0.1, "reg/sphere_gate": 0.2,
                     "reg/sphere_gate_scale": 0.03}  # fmt: skip
    assert second == new


def test_a_penalty_named_coef_keeps_its_name():
    # A plug-in "decay_coef" logs its penalty as reg/decay_coef; there is no reg/decay beside it.
    record = {"reg/decay_coef": 1.0, "reg/decay_coef_scale": 2.0}
    assert current_train_names(record) == record
    # ... nor when a plug-in "decay" runs too: then reg/decay_scale is there.
    both = {**record, "reg/decay": 3.0, "reg/decay_scale": 4.0}
    assert current_train_names(both) == both
