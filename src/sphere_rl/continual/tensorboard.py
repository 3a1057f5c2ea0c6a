"""TensorBoard view of a run: what a researcher watches while it trains.

The runner hands every record it writes to ``metrics.jsonl`` to :meth:`TensorBoardLog.log`, which
chooses the scalars worth plotting:

* ``train/...``: throughput, episode statistics, losses (bookkeeping such as the task index and
  the iteration counter is left out: it is in ``metrics.jsonl``);
* ``eval_task_end/<jj>_<task>/{success,return}`` and ``eval_periodic/<jj>_<task>/...``: task-end
  and periodic evaluations under separate tags (``jj`` keeps repeated tasks of CW20 apart);
* ``eval/average_success``: the SPHERE paper's metric over the tasks finished so far (each task's
  success at the end of its own training, averaged), logged at every task end; its last value
  is the run's number in ``sphere report``;
* ``diag/...``: the plasticity diagnostics;
* the resolved configuration through the hparams plugin, with ``eval/average_success`` as its
  metric, so runs can be compared in TensorBoard's HPARAMS tab.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

AVERAGE_SUCCESS_TAG = "eval/average_success"
# Record keys that locate a record rather than measure anything.
BOOKKEEPING_KEYS = frozenset({
    "global_step", "task_index", "iteration", "train_task_index", "eval_task_index", "episodes",
})  # fmt: skip


def eval_tag(record: dict[str, Any], key: str) -> str:
    """``eval_task_end/03_push-v3/success`` (or ``eval_periodic/...``) for an eval record."""
    task = f"{record['eval_task_index']:02d}_{record['eval_task']}"
    return f"eval_{record['eval_kind']}/{task}/{key}"


def record_scalars(record: dict[str, Any]) -> dict[str, float]:
    """The measured numbers of one ``metrics.jsonl`` record by tag (``train/sps``,
    ``eval_task_end/00_reach-v3/success``, ``diag/...``); bookkeeping keys are left out."""
    kind = record["kind"]
    return {
        eval_tag(record, key) if kind == "eval" else f"{kind}/{key}": value
        for key, value in record.items()
        if key not in BOOKKEEPING_KEYS and _is_number(value)
    }


def hparam_values(config: dict[str, Any]) -> dict[str, float | str]:
    """The configuration as hparams-plugin values: numbers stay numbers (booleans become 0/1),
    everything else (lists, None) becomes its JSON text."""
    values: dict[str, float | str] = {}
    for key, value in config.items():
        if isinstance(value, bool):
            values[key] = float(value)
        elif isinstance(value, int | float | str):
            values[key] = value
        else:
            values[key] = json.dumps(value)
    return values


class TensorBoardLog:
    """The run's ``tb/`` directory.

    Args:
        log_dir: ``run_dir / "tb"``.
        purge_step: on resume, the first step to (re)write; TensorBoard hides events at or after
            it from the interrupted session.
        config: the resolved configuration (``ExperimentConfig.to_dict()``), logged as hparams.
        eval_records: evaluations already done (on resume), so the running average success
            covers the tasks finished before the interruption.
    """

    def __init__(
        self,
        log_dir: Path,
        purge_step: int,
        config: dict[str, Any],
        eval_records: Iterable[dict[str, Any]] = (),
    ) -> None:
        self.writer = SummaryWriter(str(log_dir), purge_step=purge_step)
        self.own_end_success: dict[int, float] = {}
        for record in eval_records:
            self._note_own_end(record)
        for summary in hparams(hparam_values(config), {AVERAGE_SUCCESS_TAG: 0.0}):
            self.writer.file_writer.add_summary(summary)

    def log(self, record: dict[str, Any]) -> dict[str, float]:
        """Write the scalars of one ``metrics.jsonl`` record (kinds train, eval, diag); returns
        them by tag, so that an experiment tracker logs the same ones."""
        scalars = record_scalars(record)
        if record["kind"] == "eval" and self._note_own_end(record):
            scalars[AVERAGE_SUCCESS_TAG] = float(np.mean(list(self.own_end_success.values())))
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, record["global_step"])
        return scalars

    def _note_own_end(self, record: dict[str, Any]) -> bool:
        """Keep a task's success at the end of its own training; True if ``record`` is one."""
        own_end = (
            record.get("eval_kind") == "task_end"
            and record["train_task_index"] == record["eval_task_index"]
        )
        if own_end:
            self.own_end_success[record["eval_task_index"]] = float(record["success"])
        return own_end

    def close(self) -> None:
        self.writer.close()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
