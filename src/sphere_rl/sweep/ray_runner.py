"""Train the runs of a sweep as Ray tasks: one task per run, each in a fresh worker process.

The driver only plans, submits and collects: all state lives in the run directories, so a sweep
killed at any point is continued by running it again (finished runs are skipped, interrupted ones
resume from their checkpoints). Each task traps its own exceptions, so one failing run never stops
the others; it comes back as an outcome with its error.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sphere_rl.continual.rundir import run_lock
from sphere_rl.sweep.plan import CONFLICT, PlannedRun

FINISHED, FAILED, SKIPPED = "finished", "failed", "skipped"
LOG_NAME = "sweep.log"  # a run's own output, inside its directory
# A worker orphaned by a killed driver stops within a second (see _exit_with_parent); a new sweep
# waits this long for such a worker's lock before reporting the run busy.
LOCK_WAIT_S = 30.0
# The driver passes only small dicts through Ray's object store; keep it (shared memory) small.
LOCAL_OBJECT_STORE_BYTES = 128 * 1024**2


@dataclass
class RunOutcome:
    """What happened to one run of a sweep."""

    name: str
    run_dir: str
    method: str
    protocol: str
    seed: int
    action: str  # the plan: new | resume | retry | skip | conflict
    result: str  # finished | failed | skipped
    global_step: int = 0
    seconds: float = 0.0
    error: str | None = None
    traceback: str | None = None
    node: str | None = None  # the Ray node id that trained it

    @property
    def ok(self) -> bool:
        return self.result in (FINISHED, SKIPPED) and self.error is None


def _exit_with_parent() -> None:
    """Stop this process as soon as its parent (the raylet that started the worker) dies.

    A killed local sweep takes its raylet with it, but Ray workers only notice at their next call
    to the raylet, which a training run never makes: the orphan would train on while the next
    sweep resumes the same run. Killing it is safe: every run resumes from its last checkpoint.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.25)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _node_id() -> str | None:
    """The Ray node this process runs on; ``None`` outside Ray (a direct call, as in tests)."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


def train_run(
    config: dict[str, Any],
    run_dir: str,
    threads: int,
    plugins: Sequence[tuple[str, str]] = (),
    track: str | None = None,
) -> dict[str, Any]:
    """Body of one Ray task: create or resume the run and train it to the end.

    ``plugins`` are :func:`sphere_rl.plugins.plugin_locations` of the driver's ``--plugin``
    modules, imported first so that their methods exist in this worker too. ``track``: the
    experiment tracker the run also logs to (``--track``).

    Never raises: returns ``{"result", "global_step", "seconds", "error", "traceback", "node"}``.
    """
    import torch

    from sphere_rl.config import build_config
    from sphere_rl.continual.runner import ContinualRunner

    node = _node_id()
    if node is not None:  # a Ray worker
        _exit_with_parent()
    # Ray sets OMP_NUM_THREADS from the task's CPUs; torch's intra-op pool must follow too.
    torch.set_num_threads(threads)
    start, path = time.perf_counter(), Path(run_dir)
    outcome: dict[str, Any] = {"result": FAILED, "global_step": 0, "error": None,
                               "traceback": None, "node": node}  # fmt: skip
    try:
        from sphere_rl.plugins import import_plugin_locations

        import_plugin_locations(plugins)
        with run_lock(path, wait_s=LOCK_WAIT_S), open(path / LOG_NAME, "a") as log:
            log.write(f"sweep: on node {node} (pid {os.getpid()})\n")
            log.flush()
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                modules = [sys.modules[name] for name, _ in plugins]  # recorded in run.json
                runner = ContinualRunner.open(build_config(config), path, True, modules)
                status = runner.run(track)
        outcome.update(result=status["state"], global_step=status["global_step"])
    except Exception as err:  # reported to the driver; the run directory keeps its checkpoints
        # A refusal (another sweep's run, a busy or damaged directory, a full disk) is one line;
        # a bug keeps its traceback.
        trace = None if _is_refusal(err) else traceback.format_exc()
        outcome.update(error=f"{type(err).__name__}: {err}", traceback=trace)
    outcome["seconds"] = time.perf_counter() - start
    return outcome


def _is_refusal(err: Exception) -> bool:
    from sphere_rl.config import ConfigError
    from sphere_rl.continual.rundir import RunBusyError, RunFileError, is_storage_error
    from sphere_rl.continual.runner import ResumeError, RunDamagedError
    from sphere_rl.continual.tracking import TrackerUnavailable
    from sphere_rl.plugins import PluginError

    refusals = (ConfigError, ResumeError, RunDamagedError, RunBusyError, RunFileError, PluginError,
                TrackerUnavailable)  # fmt: skip
    return isinstance(err, refusals) or is_storage_error(err)


def skipped_outcome(plan: PlannedRun) -> RunOutcome:
    """Outcome of a run the plan does not submit (finished before, failed before, conflict)."""
    outcome = _outcome(plan, SKIPPED)
    outcome.global_step = plan.global_step
    if plan.action == CONFLICT:
        outcome.result, outcome.error = FAILED, f"{plan.run_dir}: {plan.note}"
    elif plan.state == "failed":
        outcome.result = FAILED
        outcome.error = f"{plan.note} (not retried; pass --retry-failed to resume it)"
    return outcome


def _outcome(plan: PlannedRun, result: str) -> RunOutcome:
    cfg = plan.cfg
    return RunOutcome(plan.name, str(plan.run_dir), cfg.method, cfg.protocol, cfg.seed,
                      plan.action, result)  # fmt: skip


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: start a local Ray instance; else join this cluster
    num_cpus: int | None = None  # local instance only (default: all cores)
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    max_retries: int = 2  # re-runs after a worker or node dies (each resumes from a checkpoint)
    plugins: tuple[tuple[str, str], ...] = ()  # (module, sys.path entry) each worker imports
    max_concurrent: int | None = None  # local instance only: runs at once (memory, sweep/memory.py)
    track: str | None = None  # --track: the experiment tracker every run also logs to


# A custom Ray resource with max_concurrent units on the local node; each run takes one.
RUN_SLOT = "sphere_run_slot"


def init_ray(options: RayOptions) -> None:
    """Start a small local Ray instance, or connect to the cluster at ``options.address``."""
    import ray

    # Workers' output stays in their logs; ERROR keeps Ray's own start-up warnings (token
    # authentication, object store placement) off the user's terminal. Measured with Ray 2.60:
    # WARNING still printed the token-authentication notice on every local start.
    common = {"log_to_driver": False, "logging_level": logging.ERROR}
    if options.address is None:
        # "local" always starts a new instance, never attaching to someone else's on this host.
        slots = {RUN_SLOT: options.max_concurrent} if options.max_concurrent else None
        ray.init(address="local", num_cpus=options.num_cpus or os.cpu_count(),
                 include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                 resources=slots, **common)  # fmt: skip
    else:
        ray.init(address=options.address, **common)


def run_sweep(
    plans: Sequence[PlannedRun],
    options: RayOptions,
    on_start: Callable[[PlannedRun], None] = lambda plan: None,
    on_done: Callable[[RunOutcome], None] = lambda outcome: None,
    on_tick: Callable[[], None] = lambda: None,
    tick_seconds: float = 5.0,
) -> list[RunOutcome]:
    """Train every run the plan submits on Ray; returns one outcome per plan, in plan order.

    ``on_tick`` is called every ``tick_seconds`` while runs are pending (for progress displays).

    Ray is started only when there is something to train, and shut down at the end (also on
    Ctrl-C, after which the next sweep resumes the interrupted runs).
    """
    outcomes: dict[int, RunOutcome] = {
        i: skipped_outcome(p) for i, p in enumerate(plans) if not p.submit
    }
    todo = [i for i, p in enumerate(plans) if p.submit]
    if todo:
        import ray

        init_ray(options)
        try:
            # max_calls=1: a fresh process per run (torch threads, RNGs, MuJoCo state).
            task = ray.remote(max_calls=1, max_retries=options.max_retries, retry_exceptions=False)(
                train_run
            )
            resources = {"num_cpus": options.cpus_per_run, "num_gpus": options.gpus_per_run}
            if options.max_concurrent and options.address is None:
                resources["resources"] = {RUN_SLOT: 1}
            threads = max(1, int(options.cpus_per_run))
            pending = {}
            for i in todo:
                plan = plans[i]
                ref = task.options(name=f"sphere:{plan.name}", **resources).remote(
                    plan.cfg.to_dict(), str(plan.run_dir), threads, options.plugins, options.track
                )
                pending[ref] = i
                on_start(plan)
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=tick_seconds)
                if not ready:
                    on_tick()
                    continue
                i = pending.pop(ready[0])
                ref = ready[0]
                outcomes[i] = _collect(ray, ref, plans[i])
                on_done(outcomes[i])
        finally:
            ray.shutdown()
    return [outcomes[i] for i in range(len(plans))]


def _collect(ray, ref, plan: PlannedRun) -> RunOutcome:
    outcome = _outcome(plan, FAILED)
    try:
        result = ray.get(ref)
    except Exception as err:  # the worker or its node died (after Ray's retries)
        outcome.error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        outcome.traceback = str(err)
        return outcome
    outcome.result, outcome.global_step = result["result"], result["global_step"]
    outcome.seconds, outcome.error = result["seconds"], result["error"]
    outcome.traceback, outcome.node = result["traceback"], result.get("node")
    return outcome


def outcomes_to_json(outcomes: Sequence[RunOutcome]) -> list[dict[str, Any]]:
    return [asdict(o) for o in outcomes]
