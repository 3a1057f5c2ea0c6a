"""``sphere export`` / ``runs_frame``: tidy rows checked against hand-computed ones from synthetic
run directories (synthetic_runs.py)."""

import json
import sys

import numpy as np
import pandas as pd
import pytest
from synthetic_runs import CRL_CURVES, CRL_MATRIX, RL_CURVES, RL_MATRIX, write_run
from typer.testing import CliRunner

from sphere_rl.analysis.export import EVAL_COLUMNS, RUN_COLUMNS, runs_frame
from sphere_rl.cli.app import _register_all, app
from sphere_rl.config import config_hash

_register_all()


@pytest.fixture
def two_runs(tmp_path):
    root = tmp_path / "runs"
    crl = write_run(root, protocol="crl", matrix=CRL_MATRIX, curves=CRL_CURVES)
    rl = write_run(root, protocol="rl", seed=1, matrix=RL_MATRIX, curves=RL_CURVES,
                   extra={"rho": 0.05})  # fmt: skip
    return root, crl, rl


def test_one_row_per_run_evaluation_and_task(two_runs):
    root, crl, rl = two_runs
    df = runs_frame([root])
    # CRL, 3 tasks: periodic evaluations at 3 steps of task t cover tasks 0..t (3·(1+2+3) = 18),
    # each task end all 3 tasks (9). RL: 3 periodic + 1 task end, one task each (12).
    assert (df.run == crl.name).sum() == 27
    assert (df.run == rl.name).sum() == 12
    # The configuration keys that differ: protocol and seed are columns already, rho is not.
    assert list(df.columns) == [*RUN_COLUMNS, *EVAL_COLUMNS, "rho"]
    assert set(df.rho) == {1e-3, 0.05}
    row = df[(df.run == crl.name) & (df.eval_kind == "task_end") & (df.train_task_index == 1)
             & (df.eval_task_index == 2)]  # fmt: skip
    assert row.to_dict("records") == [{
        "run": crl.name, "config_hash": config_hash(json.loads((crl / "config.json").read_text())),
        "method": "sphere", "protocol": "crl",
        "seed": 0, "sequence": "reach-v3+push-v3+window-close-v3", "state": "finished",
        "eval_kind": "task_end", "step": 800, "train_task_index": 1, "train_task": "push-v3",
        "eval_task_index": 2, "eval_task": "window-close-v3", "success": 0.2, "return": 2.0,
        "episodes": 10, "rho": 1e-3,
    }]  # fmt: skip
    # RL's periodic curve of task 2 (steps 900, 1000, 1100 of the sequence): RL_CURVES[2].
    rl_periodic = df[(df.run == rl.name) & (df.eval_kind == "periodic") & (df.eval_task_index == 2)]
    assert list(rl_periodic.step) == [900, 1000, 1100]
    assert list(rl_periodic.success) == RL_CURVES[2]
    # Task-end rows rebuild the success matrix.
    ends = df[(df.run == crl.name) & (df.eval_kind == "task_end")]
    matrix = ends.pivot(index="train_task_index", columns="eval_task_index", values="success")
    np.testing.assert_array_equal(matrix.to_numpy(), CRL_MATRIX)


def test_same_config_keys_are_left_out_and_runs_counted_once(two_runs):
    root, crl, _ = two_runs
    df = runs_frame([crl, crl, root / ".." / "runs" / crl.name])
    assert len(df) == 27
    assert list(df.columns) == [*RUN_COLUMNS, *EVAL_COLUMNS]  # one run: nothing differs


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_cli_writes_a_file_that_reads_back(two_runs, tmp_path, fmt):
    root, *_ = two_runs
    out = tmp_path / f"tidy.{fmt}"
    result = CliRunner().invoke(app, ["export", str(root), "--format", fmt, "--out", str(out)])
    assert result.exit_code == 0, result.output
    back = pd.read_csv(out) if fmt == "csv" else pd.read_parquet(out)
    expected = runs_frame([root])
    pd.testing.assert_frame_equal(back, expected, check_dtype=fmt == "parquet")
    assert "39 rows from 2 runs" in result.output


def test_cli_format_from_suffix(two_runs, tmp_path):
    root, *_ = two_runs
    out = tmp_path / "tidy.parquet"
    assert CliRunner().invoke(app, ["export", str(root), "--out", str(out)]).exit_code == 0
    assert out.read_bytes()[:4] == b"PAR1"


def test_parquet_without_pyarrow_is_one_line_exit_2(two_runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow → ImportError
    out = tmp_path / "tidy.parquet"
    result = CliRunner().invoke(app, ["export", str(two_runs[0]), "--out", str(out)])
    assert result.exit_code == 2
    assert "pip install 'sphere-rl[parquet]'" in " ".join(result.output.split())
    assert "Traceback" not in result.output and not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["{tmp}/nowhere", "--out", "{tmp}/x.csv"], "nowhere does not exist"),
        (["{tmp}", "--out", "{tmp}/x.csv"], "no run directories"),
        (["{runs}", "--out", "{tmp}"], "is a directory"),
        (["{runs}", "--out", "{tmp}/x.csv", "--format", "xlsx"], "xlsx"),
    ],
)
def test_cli_mistakes_exit_2(two_runs, tmp_path, args, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [a.replace("{runs}", str(two_runs[0])).replace("{tmp}", str(empty)) for a in args]
    result = CliRunner().invoke(app, ["export", *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
