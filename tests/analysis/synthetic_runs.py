"""Synthetic run directories with known numbers, written in the runner's schema."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sphere_rl.config import build_config
from sphere_rl.methods import resolve_method

TASKS = ("reach-v3", "push-v3", "window-close-v3")
STEPS_PER_TASK = 400  # 4 iterations of 1 env × 100 steps
EVAL_EVERY = 100


def write_run(
    root: Path,
    *,
    method: str = "sphere",
    protocol: str = "crl",
    seed: int = 0,
    tasks: Sequence[str] = TASKS,
    matrix: np.ndarray,
    curves: Sequence[Sequence[float]],
    ranks: Sequence[float] = (),
    loads: Sequence[Sequence[float]] = (),
    state: str = "finished",
    tasks_done: int | None = None,
    extra: dict | None = None,
) -> Path:
    """Write one run directory.

    Args:
        matrix: ``(n, n)`` task-end success (row: task just trained); RL uses only the diagonal.
        curves: per task, success at steps 100, 200, 300 into it (periodic evaluations); the task
            end (step 400) comes from ``matrix[i, i]``.
        ranks: one ``entk/effective_rank`` per diagnostic, logged at every periodic step.
        loads: per diagnostic, routing loads of each expert.
        tasks_done: for partial runs, how many tasks reached their end (default: all).
    """
    cfg = build_config({
        "benchmark": None, "tasks": ",".join(tasks), "method": method, "protocol": protocol,
        "seed": seed, "preset": "quick", "num_envs": 1, "num_steps": 100, "minibatch_size": 50,
        "steps_per_task": STEPS_PER_TASK, "eval_interval": EVAL_EVERY, **(extra or {}),
    })  # fmt: skip
    variant = "".join(f"-{k}{v}" for k, v in (extra or {}).items())
    run_dir = root / f"{protocol}-{method}{variant}-s{seed}"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict()))
    arch, regularizers = resolve_method(cfg)
    run_json = {"tasks": list(tasks), "arch": arch, "regularizers": regularizers}
    (run_dir / "run.json").write_text(json.dumps(run_json))
    n = len(tasks)
    done = n if tasks_done is None else tasks_done
    records, diag_steps = [], []
    for t in range(min(n, done + 1)):
        start = t * STEPS_PER_TASK
        for k, success in enumerate(curves[t]):
            step = start + (k + 1) * EVAL_EVERY
            seen = range(t + 1) if protocol == "crl" else [t]
            for j in seen:  # earlier tasks get other numbers: they must not enter task t's AUC
                value = success if j == t else 0.123
                records.append(_eval(step, "periodic", t, j, value))
            diag_steps.append((step, t))
        if t < done:
            end = start + STEPS_PER_TASK
            for j in range(n) if protocol == "crl" else [t]:
                records.append(_eval(end, "task_end", t, j, float(matrix[t, j])))
            diag_steps.append((end, t))
    for i, (rank, (step, t)) in enumerate(zip(ranks, diag_steps[: len(ranks)], strict=True)):
        record = {"kind": "diag", "global_step": step, "task_index": t,
                  "entk/effective_rank": rank, "proxy/effective_rank": rank / 2}  # fmt: skip
        if len(loads):
            record.update({f"routing/load_e{e}": v for e, v in enumerate(loads[i])})
            record["routing/load_entropy"] = 1.0  # a real key that is not an expert's load
        records.append(record)
    records.sort(key=lambda r: r["global_step"])
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    last = max((r["global_step"] for r in records), default=0)
    status = {"state": state, "task_index": done, "tasks": n, "global_step": last, "error": None}
    (run_dir / "status.json").write_text(json.dumps(status))
    return run_dir


def _eval(step: int, kind: str, t: int, j: int, success: float) -> dict:
    return {"kind": "eval", "eval_kind": kind, "global_step": step, "train_task_index": t,
            "eval_task_index": j, "train_task": TASKS[t % 3], "eval_task": TASKS[j % 3],
            "success": success, "return": 10 * success, "episodes": 10}  # fmt: skip


# A CRL run and its RL reference with hand-computed metrics (see test_continual_metrics.py).
CRL_MATRIX = np.array([[0.8, 0.1, 0.0], [0.6, 0.9, 0.2], [0.4, 0.7, 1.0]])
CRL_CURVES = [[0.2, 0.4, 0.6], [0.5, 0.7, 0.9], [0.0, 0.0, 0.5]]
RL_MATRIX = np.diag([0.8, 0.6, 1.0])
RL_CURVES = [[0.2, 0.4, 0.6], [0.0, 0.2, 0.4], [0.2, 0.2, 0.6]]
