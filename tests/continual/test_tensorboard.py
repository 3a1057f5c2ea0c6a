"""TensorBoard logging, read back from the event files with TensorBoard's own reader."""

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from sphere_rl.analysis.runs import load_run
from sphere_rl.analysis.summary import compute_run_metrics
from sphere_rl.config import build_config
from sphere_rl.continual.runner import ContinualRunner
from sphere_rl.continual.tensorboard import AVERAGE_SUCCESS_TAG, TensorBoardLog


def _read(log_dir) -> EventAccumulator:
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def _scalars(acc, tag) -> list[tuple[int, float]]:
    return [(e.step, pytest.approx(e.value)) for e in acc.Scalars(tag)]


def _hparams(acc) -> tuple[dict, list[str]]:
    """The logged hyperparameters and the metric tags of the hparams experiment."""
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    values = {}
    for key, value in start.session_start_info.hparams.items():
        values[key] = value.string_value if value.HasField("string_value") else value.number_value
    return values, [m.name.tag for m in experiment.experiment.metric_infos]


def _eval(step, kind, t, j, success, task):
    return {"kind": "eval", "eval_kind": kind, "global_step": step, "train_task_index": t,
            "train_task": "a", "eval_task_index": j, "eval_task": task, "episodes": 10,
            "success": success, "return": 10 * success}  # fmt: skip


def test_tags_average_success_and_hparams(tmp_path):
    config = {"lr": 3e-4, "method": "sphere", "hidden": [64, 64], "arch": None, "diag_entk": True}
    log = TensorBoardLog(tmp_path, purge_step=1, config=config)
    log.log({"kind": "train", "global_step": 100, "task_index": 0, "task": "a", "iteration": 1,
             "sps": 50.0, "episode/success": 0.5, "pg_loss": 0.1})  # fmt: skip
    log.log(_eval(100, "periodic", 0, 0, 0.25, "reach-v3"))
    log.log(_eval(200, "task_end", 0, 0, 0.5, "reach-v3"))
    log.log(_eval(200, "task_end", 0, 1, 0.0, "push-v3"))  # a future task: not own-end
    log.log({"kind": "diag", "global_step": 200, "task_index": 0, "entk/effective_rank": 7.5})
    log.log(_eval(400, "task_end", 1, 0, 0.2, "reach-v3"))
    log.log(_eval(400, "task_end", 1, 1, 1.0, "push-v3"))
    log.close()
    acc = _read(tmp_path)
    tags = set(acc.Tags()["scalars"])
    assert tags == {
        "train/sps",
        "train/episode/success",
        "train/pg_loss",
        "diag/entk/effective_rank",
        "eval_periodic/00_reach-v3/success",
        "eval_periodic/00_reach-v3/return",
        "eval_task_end/00_reach-v3/success",
        "eval_task_end/00_reach-v3/return",
        "eval_task_end/01_push-v3/success",
        "eval_task_end/01_push-v3/return",
        AVERAGE_SUCCESS_TAG,
    }  # fmt: skip  (no task indices, iteration counters or episode counts)
    assert _scalars(acc, "eval_periodic/00_reach-v3/success") == [(100, 0.25)]
    assert _scalars(acc, "eval_task_end/00_reach-v3/success") == [(200, 0.5), (400, 0.2)]
    # The paper's metric over the tasks finished so far: own-end successes 0.5, then 1.0.
    assert _scalars(acc, AVERAGE_SUCCESS_TAG) == [(200, 0.5), (400, 0.75)]
    values, metrics = _hparams(acc)
    assert values == {"lr": pytest.approx(3e-4), "method": "sphere", "hidden": "[64, 64]",
                      "arch": "null", "diag_entk": 1.0}  # fmt: skip
    assert metrics == [AVERAGE_SUCCESS_TAG]


def test_average_success_carries_over_a_resume(tmp_path):
    done = [_eval(200, "task_end", 0, 0, 0.4, "reach-v3")]
    log = TensorBoardLog(tmp_path, purge_step=201, config={}, eval_records=done)
    log.log(_eval(400, "task_end", 1, 1, 0.8, "push-v3"))
    log.close()
    assert _scalars(_read(tmp_path), AVERAGE_SUCCESS_TAG) == [(400, 0.6)]


def test_runner_logs_to_tensorboard(tmp_path, tiny_overrides):
    cfg = build_config({**tiny_overrides, "protocol": "crl"})
    ContinualRunner.open(cfg, tmp_path / "run", show_progress=False).run()
    acc = _read(tmp_path / "run" / "tb")
    tags = set(acc.Tags()["scalars"])
    assert not {t for t in tags if t.endswith(("task_index", "/iteration", "/episodes"))}
    assert {"eval_task_end/01_window-close-v3/success", "eval_periodic/00_reach-v3/success",
            "train/sps", "diag/entk/effective_rank", "train/reg/sphere_scale"} <= tags  # fmt: skip
    # The last average success is the run's number in `sphere report`.
    run = load_run(tmp_path / "run")
    last_step, last_value = _scalars(acc, AVERAGE_SUCCESS_TAG)[-1]
    assert last_step == 600
    assert last_value == compute_run_metrics(run, "sphere", None).average_success
    values, _ = _hparams(acc)
    assert values["method"] == "sphere" and values["hidden"] == json.dumps(cfg.hidden)
