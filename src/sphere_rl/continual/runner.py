"""The continual-RL runner: one agent (``crl``) or one fresh agent per task (``rl``) through a
task sequence, with periodic evaluation, plasticity diagnostics, checkpoints and exact resume.

Checkpoints never change what training sees. Every ``checkpoint_interval`` env steps (rounded to
whole iterations) the runner writes a checkpoint holding the agent (weights, optimisers,
normaliser), the RNG states, the counters and a snapshot of the training environments
(``VectorTaskEnv.get_state``: physics, episode counters, goals, generators), and keeps stepping the
same environments; a resumed run loads the snapshot and continues every episode exactly where it
was. The environments are seeded once, at the start of each task. Backends that cannot snapshot
(envpool) defer the checkpoint to the next iteration at which every environment has just reset, and
re-seed them there (no episode is cut), in the uninterrupted run as well; if no such moment comes,
the task end's checkpoint is the next one. Evaluation and diagnostics use their own seeded
environments and draw no random numbers from the training streams (every seed and environment
comes from :mod:`sphere_rl.continual.seeding`); the release's evaluator
(``eval_protocol: release``) continues each task's eval environments from one evaluation to the
next, so their snapshots are in every checkpoint too.
"""

from __future__ import annotations

import contextlib
import csv
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

import sphere_rl
from sphere_rl import provenance
from sphere_rl.algo.iteration import train_iteration
from sphere_rl.algo.ppo import NonFiniteLossError, PPOAgent
from sphere_rl.config import (
    RUNTIME_KEYS,
    ConfigError,
    ExperimentConfig,
    build_config,
    config_diff,
    config_hash,
    saved_config,
)
from sphere_rl.continual.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from sphere_rl.continual.evaluation import evaluate_release
from sphere_rl.continual.finite import check_agent_state
from sphere_rl.continual.progress import ProgressDisplay
from sphere_rl.continual.rundir import (
    JsonlLog,
    RunFileError,
    append_error_log,
    atomic_write_json,
    is_storage_error,
    read_json,
    read_jsonl,
    remove_stale_temporaries,
    write_eval_csv,
)
from sphere_rl.continual.seeding import (
    agent_seed,
    derive_seed,
    eval_seed,
    evaluate_task,
    probe_batch,
    release_eval_envs,
    run_probe_batch,
    training_env_seed,
    training_envs,
)
from sphere_rl.continual.tensorboard import TensorBoardLog
from sphere_rl.continual.tracking import Tracker, log_finished_run, open_tracker
from sphere_rl.envs import resolve_tasks, task_spec
from sphere_rl.envs.vector import SNAPSHOT_FAMILIES, VectorTaskEnv, resolve_backend
from sphere_rl.interrupts import RunInterrupted, deferred_interrupts, raise_if_requested
from sphere_rl.methods import build_agent, resolve_method, validate_names
from sphere_rl.plugins import plugin_records
from sphere_rl.runtime import freed_memory_returned, keep_freed_memory, release_freed_memory


class ResumeError(RuntimeError):
    """A run directory cannot be resumed with the given configuration."""


class RunDamagedError(ResumeError):
    """A run directory's files contradict each other; resuming would lose or duplicate work."""


@dataclass
class RunState:
    task_index: int = 0
    iteration: int = 0  # completed iterations on the current task
    global_step: int = 0
    task_started: bool = False  # the task-start setup (fresh agent / optimiser reset) is done


def run_dir_name(cfg: ExperimentConfig) -> str:
    """``<what>[-<preset>]-<protocol>-<method>[-<arch>-<reg>]-s<seed>-<config hash>``: readable,
    and unique to the run's identity (:func:`~sphere_rl.config.config_hash`), so re-running the
    same experiment finds its run and no two experiments share a directory. The preset is named
    where it is not the benchmark's own (``cw10-quick-crl-sphere-s0-…``)."""
    what, extra = _name_parts(cfg)
    preset = "" if cfg.preset in (None, cfg.benchmark) else f"-{cfg.preset}"
    identity = config_hash(cfg.to_dict())
    return f"{what}{preset}-{cfg.protocol}-{cfg.method}{extra}-s{cfg.seed}-{identity}"


def _name_parts(cfg: ExperimentConfig) -> tuple[str, str]:
    """The sequence (benchmark, or ``custom-`` and the tasks) and ``-<arch>-<reg>`` if overridden."""
    what = cfg.benchmark if cfg.tasks is None else "custom-" + "-".join(cfg.tasks)[:60]
    extra = "" if (cfg.arch is None and cfg.reg is None) else f"-{cfg.arch}-{cfg.reg}"
    return what, extra


def legacy_run_dir_name(cfg: ExperimentConfig) -> str:
    """The name runs had before :func:`run_dir_name` carried the preset and the config hash."""
    what, extra = _name_parts(cfg)
    return f"{what}-{cfg.protocol}-{cfg.method}{extra}-s{cfg.seed}"


def find_run_dir(cfg: ExperimentConfig, out: Path) -> Path:
    """Where ``cfg``'s run lives under ``out``: ``out/run_dir_name(cfg)``, unless only a run under
    its :func:`legacy_run_dir_name` exists and holds this very configuration (same
    :func:`~sphere_rl.config.config_hash`), which re-running the same command then continues."""
    run_dir, legacy = Path(out) / run_dir_name(cfg), Path(out) / legacy_run_dir_name(cfg)
    if (run_dir / "config.json").exists() or not (legacy / "config.json").is_file():
        return run_dir
    try:
        saved = read_json(legacy / "config.json")
    except RunFileError:
        return run_dir
    same = isinstance(saved, dict) and config_hash(saved) == config_hash(cfg.to_dict())
    return legacy if same else run_dir


NEW_RUN, RESUME_RUN, FINISHED_RUN = "new", "resume", "finished"


@dataclass(frozen=True)
class OpenDecision:
    """What :meth:`ContinualRunner.open` will do with a run directory (``--dry-run`` prints it)."""

    action: str  # new | resume | finished
    saved: dict[str, Any] | None = None  # the stored configuration of an existing run
    state: str = "new"  # status.json's state
    global_step: int = 0  # where the run stands


def decide_open(
    cfg: ExperimentConfig | None, run_dir: Path, allow_config_change: bool = False
) -> OpenDecision:
    """Read ``run_dir`` and decide whether :meth:`ContinualRunner.open` starts, resumes or finds
    finished the run there, touching nothing. ``allow_config_change``: a changed configuration is
    not refused here (the resume checks what may change, and records it).

    Raises:
        ResumeError: ``cfg`` differs from the stored configuration in a key other than
            :data:`RUNTIME_KEYS`, or ``cfg=None`` and no run in ``run_dir``.
        RunFileError: config.json cannot be read.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.exists():
        if cfg is None:
            raise ResumeError(f"{run_dir} is not a run directory (no config.json)")
        return OpenDecision(NEW_RUN)
    saved = read_json(config_path)
    if isinstance(saved, dict):
        saved = saved_config(saved)
    if cfg is not None:
        diff = [k for k in config_diff(saved, cfg.to_dict()) if k not in RUNTIME_KEYS]
        if diff and not allow_config_change:
            details = ", ".join(f"{k}: {saved.get(k)!r} → {cfg.to_dict().get(k)!r}" for k in diff)
            raise ResumeError(
                f"{run_dir} was started with a different configuration; differing keys:"
                f" {details}. Resume without changing them, or use another --out."
            )
    status_path = run_dir / "status.json"
    try:
        status = read_json(status_path) if status_path.exists() else {"state": "new"}
    except RunFileError:  # rewritten by the resume
        status = {"state": "unreadable"}
    state, step = status.get("state", "new"), status.get("global_step", 0)
    action = FINISHED_RUN if state == "finished" else RESUME_RUN
    return OpenDecision(action, saved, state, step)


class ContinualRunner:
    """Train (or resume) one experiment in ``run_dir``.

    Use :meth:`open` to create a new run or resume an existing one; then :meth:`run`.
    """

    def __init__(
        self,
        cfg: ExperimentConfig,
        run_dir: Path,
        show_progress: bool = True,
        tasks: Sequence[str] | None = None,
    ) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        # ``tasks``: what check_sequence(cfg) returned to a caller that checked first (the CLI
        # checks before it touches the run directory); one check per run.
        self.tasks = check_sequence(cfg) if tasks is None else list(tasks)
        self.show_progress = show_progress
        self.state = RunState()
        self.metrics = JsonlLog(self.run_dir / "metrics.jsonl")
        self.eval_records: list[dict[str, Any]] = []
        self._probes: dict[int, np.ndarray] = {}
        self._fixed: np.ndarray | None = None
        self.agent: PPOAgent | None = None
        self.initial_actor: dict[str, torch.Tensor] | None = None
        self._restored_from: dict[str, Any] | None = None
        self._env_state: dict[str, Any] | None = None  # training envs' snapshot, from _restore
        # eval_protocol "release": each task's eval envs between evaluations (snapshots, by task)
        self._eval_envs: dict[int, dict[str, Any]] = {}
        self.tracker: Tracker | None = None  # an experiment tracker, while run(track=...) runs
        self.tracked: str | None = None  # where that tracker's run is, once it is closed

    # ----------------------------------------------------------------------------- creation
    @classmethod
    def open(
        cls,
        cfg: ExperimentConfig | None,
        run_dir: Path,
        show_progress: bool = True,
        allow_config_change: bool = False,
        plugins: Sequence[ModuleType] = (),
        tasks: Sequence[str] | None = None,
    ) -> ContinualRunner:
        """Start a new run in ``run_dir``, or resume the one there.

        ``plugins``: the plug-in modules a new run needs, recorded in run.json (``"plugins"``,
        :func:`~sphere_rl.plugins.plugin_records`) so that later commands can load them.
        ``tasks``: :func:`check_sequence` of ``cfg`` when the caller has checked it already (else
        it is checked here; with ``cfg=None`` it must be ``None``).

        Resuming compares ``cfg`` (if given) with the saved configuration and refuses any change
        but of :data:`RUNTIME_KEYS`, naming the differing keys; it also refuses a ``config.json``
        edited since the run started (its hash differs from run.json's) and a checkpoint that
        belongs to another run (its identity). ``allow_config_change`` accepts a changed
        configuration (not another seed, method or architecture) and records it in the new
        segment of run.json. A new run is validated before its directory is created. Callers
        that may race another process hold :func:`~sphere_rl.continual.rundir.run_lock` (the
        CLI and the sweep do): a resume also deletes the temporary files of interrupted writes.

        Raises:
            ResumeError: a changed configuration, a foreign checkpoint, or ``cfg=None`` and no
                run in ``run_dir``.
            RunDamagedError, RunFileError: the run's files are damaged (status becomes ``failed``).
        """
        run_dir = Path(run_dir)
        config_path = run_dir / "config.json"
        decision = decide_open(cfg, run_dir, allow_config_change)
        if decision.action != NEW_RUN:
            saved = decision.saved
            new = saved if cfg is None else cfg.to_dict()
            run_info = _read_run_info(run_dir)
            runner = cls(build_config(new), run_dir, show_progress, tasks)
            remove_stale_temporaries(run_dir)
            try:
                change = runner._restore(run_info, saved, allow_config_change)
            except (RunFileError, RunDamagedError) as err:
                runner._mark_failed(str(err))  # a sweep must not take it for a live run
                raise
            if new != saved:  # runtime keys, or an allowed change
                atomic_write_json(config_path, new)
            if runner.status.get("state") != "finished":
                runner._begin_segment(run_info, change)
            return runner
        runner = cls(cfg, run_dir, show_progress, tasks)  # validated before anything is created
        run_dir.mkdir(parents=True, exist_ok=True)
        arch, regs = resolve_method(cfg)
        run_info = {"tasks": runner.tasks, "arch": arch, "regularizers": regs,
                    "version": sphere_rl.__version__, "plugins": plugin_records(plugins)}  # fmt: skip
        runner._begin_segment(run_info, {})  # writes run.json
        atomic_write_json(config_path, cfg.to_dict())
        runner._write_status("running")
        return runner

    @property
    def status(self) -> dict[str, Any]:
        path = self.run_dir / "status.json"
        return read_json(path) if path.exists() else {"state": "new"}

    # ----------------------------------------------------------------------------- main loop
    def run(self, track: str | None = None) -> dict[str, Any]:
        """Train through the remaining tasks; returns the final status. A finished run is a no-op.

        The segment of run.json this session opened gets its end, step and outcome (finished,
        failed or interrupted) however training ends. ``track``: also log to this experiment
        tracker (:data:`~sphere_rl.continual.tracking.TRACKERS`), which gets the run's summary
        files and figures once it finishes."""
        try:
            if track is not None and self.status.get("state") != "finished":
                self.tracker = open_tracker(track, self.run_dir, self.cfg.to_dict())
            status = self._train()
        except KeyboardInterrupt:
            self._end_segment("interrupted", propagating=True)
            self._close_tracker("interrupted", propagating=True)
            raise
        except BaseException:
            self._end_segment("failed", propagating=True)
            self._close_tracker("failed", propagating=True)
            raise
        self._end_segment(status.get("state", "finished"))
        self._close_tracker(status.get("state", "finished"))
        return status

    def _close_tracker(self, outcome: str, propagating: bool = False) -> None:
        """Give a finished run's summary files and figures to the tracker, then close it. A figure
        that cannot be drawn is a one-line warning on stderr. While another error propagates, a
        tracker's failure is not allowed to replace it."""
        tracker, self.tracker = self.tracker, None
        if tracker is None:
            return
        self.tracked = tracker.description
        try:
            if outcome == "finished":
                for problem in log_finished_run(tracker, self.run_dir, self.state.global_step):
                    print(f"warning: {problem}", file=sys.stderr, flush=True)
            tracker.close(outcome)
        except Exception:
            if not propagating:
                raise

    def _train(self) -> dict[str, Any]:
        if self.status.get("state") == "finished":
            return self.status
        if self.cfg.torch_threads > 0:
            torch.set_num_threads(self.cfg.torch_threads)
        keep_freed_memory()
        total = len(self.tasks) * self.cfg.iterations_per_task * self.cfg.steps_per_iteration
        self.tensorboard = TensorBoardLog(
            self.run_dir / "tb", self.state.global_step + 1, self.cfg.to_dict(), self.eval_records
        )
        try:
            with (
                deferred_interrupts(),
                ProgressDisplay(total, self.show_progress, self.run_dir.name) as progress,
            ):
                self.progress = progress
                blind = _tasks_without_snapshots(self.tasks[self.state.task_index :], self.cfg)
                if blind:
                    progress.console.print(
                        "[yellow]warning:[/yellow] the training environments of"
                        f" {', '.join(blind)} cannot be snapshotted (envpool, gym: tasks), so"
                        " checkpoints wait for an iteration at which all of them have just reset"
                        " (else the task end)",
                        highlight=False,
                        soft_wrap=True,  # one line, however narrow the terminal
                    )
                while self.state.task_index < len(self.tasks):
                    self._run_task(self.state.task_index)
        except (KeyboardInterrupt, RunInterrupted) as err:
            # status.json must not say "running" once nothing runs; the checkpoint stays valid.
            name = err.signal_name if isinstance(err, RunInterrupted) else "SIGINT"
            step = self.state.global_step
            self._write_status("interrupted", error=f"interrupted by {name}", signal=name)
            raise RunInterrupted(name, step) from None
        except NonFiniteLossError as err:
            self._write_status("failed", error=str(err))
            raise
        except Exception as err:  # any crash: say so in status.json; the checkpoint stays valid
            if is_storage_error(err):  # a full disk, not a failed run: it stays resumable
                raise
            self._write_status("failed", error=f"{type(err).__name__}: {err}")
            append_error_log(
                self.run_dir,
                f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} at step {self.state.global_step}\n"
                + traceback.format_exc(),
            )
            raise
        finally:
            self.tensorboard.close()
        self._write_status("finished")
        return self.status

    def _run_task(self, t: int) -> None:
        """Train task ``t`` to its end. Memory: the diagnostics' probe environments come and go
        before the training environments exist, and those are gone before the task end builds
        evaluation environments, so no two sets are resident at once (``docs/benchmarks.md``,
        "Memory per run")."""
        if not self.state.task_started:
            self._start_task(t)
        self._probe_batches(t)
        release_freed_memory()
        self._train_task(t)
        release_freed_memory()  # the training environments, before the task end builds others
        self._end_task(t)

    def _train_task(self, t: int) -> None:
        """The remaining iterations of task ``t``, on training environments that live only here."""
        cfg = self.cfg
        env = training_envs(cfg, t, self.tasks[t])
        release_freed_memory()  # what compiling the models and parsing their files left behind
        every = max(1, cfg.checkpoint_interval // cfg.steps_per_iteration)  # iterations
        # A checkpoint is owed; envs that cannot snapshot defer it while an episode is running.
        due = False
        try:
            if self._env_state is not None:
                obs = self._load_env_state(env)
            else:
                obs = env.reset(seed=training_env_seed(cfg, t, self.state.iteration))
            for it in range(self.state.iteration, cfg.iterations_per_task):
                due = due or it % every == 0
                if due and self._restored_from == asdict(self.state):
                    due = False  # this checkpoint is the one just resumed from
                elif due and env.supports_state:
                    self._save_checkpoint(env)
                    due = False
                elif due and env.at_episode_start:
                    # No episode is running, so re-seeding cuts nothing; a resumed run re-seeds
                    # the same way, since it cannot restore these envs' random streams.
                    if it > 0:
                        obs = env.reset(seed=training_env_seed(cfg, t, it))
                    self._save_checkpoint()
                    due = False
                raise_if_requested()  # after the checkpoint above, before new work
                obs = self._iteration(env, obs, t, it)
                self._periodic(t)
        finally:
            env.close()

    def _load_env_state(self, env: VectorTaskEnv) -> np.ndarray:
        try:
            obs = env.set_state(self._env_state)
        except (ValueError, KeyError, TypeError, IndexError) as err:
            raise ResumeError(
                f"{self.run_dir / 'checkpoints' / 'latest.pt'}: its snapshot of the training"
                f" environments cannot be loaded ({type(err).__name__}: {err}); was it written"
                " by another version of sphere_rl or of the simulator?"
            ) from err
        self._env_state = None
        return obs

    def _start_task(self, t: int) -> None:
        cfg = self.cfg
        obs_dim, act_dim = _task_dims(self.tasks[t])
        if self.agent is None or cfg.protocol == "rl":
            torch.manual_seed(agent_seed(cfg, t))
            self.agent = build_agent(cfg, obs_dim, act_dim)
            self.initial_actor = {k: v.clone() for k, v in self.agent.actor.state_dict().items()}
        else:  # CRL boundary (release): LR schedule restarts; Adam moments carried unless asked
            self.agent.start_task(reset_optimizer=not cfg.carry_optimizer)
        for callback in self.agent.callbacks:
            callback.on_task_start(self.agent, t)
        self.state.task_started = True
        self.progress.message(f"[bold]task {t + 1}/{len(self.tasks)}[/bold]: {self.tasks[t]}")

    def _iteration(self, env: VectorTaskEnv, obs: np.ndarray, t: int, it: int) -> np.ndarray:
        """Train one iteration (:func:`~sphere_rl.algo.iteration.train_iteration`), count it,
        log it and show it; returns the observations to continue from."""
        obs, stats = train_iteration(self.agent, env, obs, self.cfg, it)
        self.state.iteration = it + 1
        self.state.global_step += self.cfg.steps_per_iteration
        record = {
            "kind": "train",
            "global_step": self.state.global_step,
            "task_index": t,
            "task": self.tasks[t],
            "iteration": it + 1,
            **stats,
        }
        self._log(record)
        success = record["episode/success"]
        self.progress.update(
            self.state.global_step,
            task=f"{t + 1}/{len(self.tasks)} {self.tasks[t]}",
            sps=record["sps"],
            success=None if np.isnan(success) else f"{success:.2f}",
        )
        return obs

    # --------------------------------------------------------------- evaluation & diagnostics
    def _periodic(self, t: int) -> None:
        """Evaluate and diagnose when this iteration crossed an interval (not on a task's last
        iteration: the task end does both)."""
        cfg, step = self.cfg, self.state.global_step
        if self.state.iteration >= cfg.iterations_per_task:
            return
        if _crossed(step, cfg.steps_per_iteration, cfg.eval_interval):
            self._evaluate(t, range(t + 1) if cfg.protocol == "crl" else [t], "periodic")
        if _crossed(step, cfg.steps_per_iteration, cfg.diag_interval):
            self._diagnose(t)

    def _end_task(self, t: int) -> None:
        cfg = self.cfg
        every = range(len(self.tasks)) if cfg.protocol == "crl" else [t]
        self._evaluate(t, every, "task_end")
        self._diagnose(t)
        self._write_checkpoint(f"task_{t:03d}_end.pt")
        self.state = RunState(task_index=t + 1, global_step=self.state.global_step)
        self._save_checkpoint()

    def _evaluate(self, t: int, eval_tasks, kind: str) -> None:
        for j in eval_tasks:
            if self.cfg.eval_protocol == "release":
                result = self._evaluate_release(j)
            else:
                seed = eval_seed(self.cfg, j)
                result = evaluate_task(
                    self.agent, self.cfg, self.tasks[j], self.cfg.eval_episodes, seed
                )
            record = {
                "kind": "eval",
                "eval_kind": kind,
                "global_step": self.state.global_step,
                "train_task_index": t,
                "train_task": self.tasks[t],
                "eval_task_index": j,
                "eval_task": self.tasks[j],
                "episodes": self.cfg.eval_episodes,
                **result,
            }
            self._log(record)
            self.eval_records.append({**record, "kind": kind})
            if j == t:
                self.progress.update(self.state.global_step, success=f"{result['success']:.2f}")
        write_eval_csv(self.run_dir / "eval.csv", self.eval_records)
        summary = ", ".join(
            f"{r['eval_task']}={r['success']:.2f}"
            for r in self.eval_records[-len(list(eval_tasks)) :]
        )
        self.progress.message(f"  eval ({kind}) @ {self.state.global_step:,} steps: {summary}")

    def _evaluate_release(self, j: int) -> dict[str, float]:
        """Evaluate task ``j`` on its own eval envs, seeded once (at its first evaluation) and
        continued by every later one, as the release does. Between evaluations they live as a
        snapshot in ``_eval_envs`` and so in every checkpoint, which keeps resumes exact. Envs
        that cannot snapshot (envpool, ``gym:``) are instead re-seeded at every evaluation from
        the task and the number of its earlier evaluations (the restored logs hold it): start
        states still differ between evaluations, and a resume repeats them."""
        cfg = self.cfg
        env = release_eval_envs(cfg, j, self.tasks[j])
        try:
            seed = None  # the first reset uses the construction seed
            if env.supports_state and j in self._eval_envs:
                env.set_state(self._eval_envs[j])
            elif not env.supports_state:
                done = sum(r["eval_task_index"] == j for r in self.eval_records)
                seed = eval_seed(cfg, j, done) if done else None
            result = evaluate_release(self.agent, env, cfg.eval_episodes, seed)
            if env.supports_state:
                self._eval_envs[j] = env.get_state()
        finally:
            env.close()
            del env
            release_freed_memory()
        return result

    def _diagnose(self, t: int) -> None:
        from sphere_rl.metrics import plasticity_report

        cfg = self.cfg
        probes = self._probe_batches(t)
        report = {}
        for prefix, states in probes.items():
            with freed_memory_returned():
                metrics = plasticity_report(
                    self.agent.actor,
                    self.agent.obs_tensor(states),
                    initial_state=self.initial_actor,
                    include_entk=cfg.diag_entk,
                )
            report.update({prefix + key: value for key, value in metrics.items()})
        self._log({"kind": "diag", "global_step": self.state.global_step, "task_index": t,
                   "task": self.tasks[t], **report})  # fmt: skip
        rank = report.get("entk/effective_rank")
        if rank is not None:
            self.progress.update(self.state.global_step, rank=f"{rank:.1f}")

    def _probe_batches(self, t: int) -> dict[str, np.ndarray]:
        """The raw states task ``t``'s diagnostics run on, by key prefix: its own probe (``""``)
        and, with ``diag_fixed_probe``, the run-wide one (``"fixed/"``). Built on first use (each
        from its own seeded environments, so when does not matter) and kept."""
        cfg = self.cfg
        if t not in self._probes:
            self._probes[t] = probe_batch(cfg, t, self.tasks[t], cfg.diag_samples)
        probes = {"": self._probes[t]}
        if cfg.diag_fixed_probe:
            probes["fixed/"] = self._fixed_probe()
        return probes

    def _fixed_probe(self) -> np.ndarray:
        """The run-wide probe batch (:func:`~sphere_rl.continual.seeding.run_probe_batch`), built
        once."""
        if self._fixed is None:
            self._fixed = run_probe_batch(self.cfg, self.tasks)
        return self._fixed

    # ----------------------------------------------------------------------------- persistence
    def _log(self, record: dict[str, Any]) -> None:
        self.metrics.append(record)
        scalars = self.tensorboard.log(record)
        if self.tracker is not None:
            self.tracker.log_scalars(scalars, record["global_step"])

    def _checkpoint_payload(self, env: VectorTaskEnv | None = None) -> dict[str, Any]:
        return {
            "state": asdict(self.state),
            # The training envs mid-task; None at a task boundary, or where they are re-seeded.
            "env": env.get_state() if env is not None else None,
            "eval_envs": self._eval_envs,
            "agent": self.agent.state_dict() if self.agent is not None else None,
            "initial_actor": self.initial_actor,
            "rng": capture_rng_state(),
            "config": self.cfg.to_dict(),
            "tasks": self.tasks,
            "obs_dim": self.agent.actor.obs_dim if self.agent else None,
            "act_dim": self.agent.actor.act_dim if self.agent else None,
            "identity": self._identity(),
        }

    def _identity(self) -> dict[str, Any]:
        """What makes a checkpoint this run's: a resume refuses one whose identity differs."""
        cfg = self.cfg
        return {
            "config_hash": config_hash(cfg.to_dict()),
            "run_dir": self.run_dir.name,
            "seed": cfg.seed,
            "arch": resolve_method(cfg)[0],
            "method": cfg.method,
        }

    def _write_checkpoint(self, name: str, env: VectorTaskEnv | None = None) -> None:
        payload = self._checkpoint_payload(env)
        check_agent_state(payload["agent"], f"checkpoints/{name}", self.state.global_step)
        save_checkpoint(self.run_dir / "checkpoints" / name, payload)

    def _save_checkpoint(self, env: VectorTaskEnv | None = None) -> None:
        self._write_checkpoint("latest.pt", env)
        self._write_status("running")

    def _restore(
        self, run_info: dict[str, Any], saved: dict[str, Any], allow_config_change: bool
    ) -> dict[str, list[Any]]:
        """Load ``latest.pt`` (if any) after checking that it and the configuration are this
        run's; returns the accepted configuration change ``{key: [old, new]}`` (empty if none).

        Args:
            run_info: run.json as read before the resume.
            saved: config.json as found on disk.
        """
        path = self.run_dir / "checkpoints" / "latest.pt"
        records = read_jsonl(self.metrics.path)
        if not path.exists():
            if records:  # the first checkpoint precedes the first record
                raise RunDamagedError(
                    f"cannot resume {self.run_dir}: {path} is missing but metrics.jsonl holds"
                    f" {len(records)} records, so starting over would duplicate them. Restore"
                    " the checkpoint, or delete the run directory to start the run from scratch."
                )
            # killed before the first checkpoint: start over
            return self._check_config(run_info, saved, None, allow_config_change)
        payload = load_checkpoint(path)
        change = self._check_config(run_info, saved, payload.get("config"), allow_config_change)
        self._check_identity(path, payload.get("identity"), run_info)
        _check_logs_reach(self.run_dir, records, payload["state"]["global_step"])
        self.state = RunState(**payload["state"])
        if payload["agent"] is not None:
            self.agent = build_agent(self.cfg, payload["obs_dim"], payload["act_dim"])
            try:
                self.agent.load_state_dict(payload["agent"])
            except (RuntimeError, KeyError, ValueError, TypeError) as err:  # an older checkpoint
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise ResumeError(
                    f"{path} does not fit this run's agent ({self.cfg.method},"
                    f" {resolve_method(self.cfg)[0]}): {first[:200]}; it was written by another"
                    " run. Restore this run's own checkpoint, or start the run over."
                ) from err
            self.initial_actor = payload["initial_actor"]
        restore_rng_state(payload["rng"])
        self._env_state = payload.get("env")
        self._eval_envs = payload.get("eval_envs") or {}
        self._restored_from = asdict(self.state)
        kept = self.metrics.truncate_after(self.state.global_step)
        self.eval_records = [{**r, "kind": r["eval_kind"]} for r in kept if r["kind"] == "eval"]
        write_eval_csv(self.run_dir / "eval.csv", self.eval_records)
        return change

    def _check_config(
        self,
        run_info: dict[str, Any],
        saved: dict[str, Any],
        checkpointed: dict[str, Any] | None,
        allow: bool,
    ) -> dict[str, list[Any]]:
        """Compare this run's configuration with the one it was started with (run.json's
        ``config_hash``). A difference is refused naming the keys (compared with config.json as
        found, or with the checkpoint's configuration when config.json itself was edited),
        unless ``allow``: then it is returned as ``{key: [old, new]}``."""
        new = self.cfg.to_dict()
        recorded = run_info.get("config_hash") or config_hash(saved)  # older runs: config.json
        if config_hash(new) == recorded:
            return {}
        reference = saved
        if config_hash(saved) != recorded and checkpointed is not None:
            reference = saved_config(
                checkpointed
            )  # config.json edited on disk: the checkpoint knows better
        keys = [k for k in config_diff(reference, new) if k not in RUNTIME_KEYS]
        if allow:
            return {k: [reference.get(k), new.get(k)] for k in keys}
        details = ", ".join(f"{k}: {reference.get(k)!r} → {new.get(k)!r}" for k in keys)
        raise ResumeError(
            f"{self.run_dir / 'config.json'} was changed after the run started (config hash"
            f" {config_hash(new)}, run.json records {recorded}); differing keys:"
            f" {details or 'not known (the checkpoint holds no configuration)'}. Restore it,"
            " or resume with --allow-config-change to continue under the new configuration."
        )

    def _check_identity(
        self, path: Path, identity: dict[str, Any] | None, run_info: dict[str, Any]
    ) -> None:
        """Refuse a checkpoint written by another run (checkpoints without identity, from
        older versions, are accepted)."""
        if identity is None:
            return
        mine = self._identity()
        hashes = {run_info.get("config_hash"), mine["config_hash"]}
        hashes |= {s.get("config_hash") for s in run_info.get("segments", [])}
        differing = [
            f"{key} {identity.get(key)!r} (this run: {mine[key]!r})"
            for key in ("seed", "method", "arch", "run_dir")
            if identity.get(key) != mine[key]
        ]
        if identity.get("config_hash") not in hashes - {None}:
            differing.append(
                f"config_hash {identity.get('config_hash')!r} (this run: {mine['config_hash']!r})"
            )
        if differing:
            raise ResumeError(
                f"{path} belongs to another run: {', '.join(differing)}. Restore this run's own"
                " latest.pt, or start a new run (a renamed run directory: rename it back)."
            )

    def _begin_segment(self, run_info: dict[str, Any], change: dict[str, list[Any]]) -> None:
        """Append this session's segment (provenance, start step, accepted configuration
        change) to run.json, and record the configuration hash it trains under."""
        current = config_hash(self.cfg.to_dict())
        segment = {
            **provenance.collect_provenance(device=self.cfg.device),
            "torch_threads": self.cfg.torch_threads,
            "config_hash": current,
            "end": None,
            "start_step": self.state.global_step,
            "end_step": None,
            "outcome": None,
        }
        if change:
            segment["config_change"] = change
        segments = [*run_info.get("segments", []), segment]
        atomic_write_json(
            self.run_dir / "run.json", {**run_info, "config_hash": current, "segments": segments}
        )

    def _end_segment(self, outcome: str, propagating: bool = False) -> None:
        """Close the open segment of run.json (the last one, if its end is not yet written).
        While another error propagates, failing to write is not allowed to replace it."""
        path = self.run_dir / "run.json"
        try:
            run_info = read_json(path) if path.exists() else {}
            segments = run_info.get("segments") if isinstance(run_info, dict) else None
            if not segments or segments[-1].get("end", True) is not None:
                return  # no segment opened by this session (a finished run, or an older run.json)
            segments[-1].update(
                end=provenance.utc_now(), end_step=self.state.global_step, outcome=outcome
            )
            atomic_write_json(path, run_info)
        except (OSError, RunFileError, AttributeError):
            if not propagating:
                raise

    def _mark_failed(self, error: str) -> None:
        """Set the state to ``failed`` keeping the recorded position (the runner's own may not
        have been restored)."""
        try:
            status = self.status
        except RunFileError:
            status = {}
        status.update(state="failed", error=error, updated=time.time())
        atomic_write_json(self.run_dir / "status.json", status)

    def _write_status(self, state: str, error: str | None = None, **extra: Any) -> None:
        atomic_write_json(
            self.run_dir / "status.json",
            {
                "state": state,
                "task_index": self.state.task_index,
                "tasks": len(self.tasks),
                "global_step": self.state.global_step,
                "error": error,
                "updated": time.time(),
                **extra,
            },
        )


def _read_run_info(run_dir: Path) -> dict[str, Any]:
    """run.json of a run (``{}`` if missing; older ones have no ``segments`` or ``config_hash``)."""
    path = run_dir / "run.json"
    info = read_json(path) if path.exists() else {}
    if not isinstance(info, dict):
        raise RunFileError(f"{path}: not a JSON object; the run directory is damaged")
    return info


def _check_logs_reach(run_dir: Path, records: list[dict[str, Any]], step: int) -> None:
    """Refuse a resume whose logs lack records the checkpoint says were written (a cut or edited
    metrics.jsonl): trimming would then shorten eval.csv and lose those records for good."""
    problem = None
    if step > 0 and not any(
        r["kind"] == "train" and r["global_step"] == step for r in records
    ):  # every checkpoint after the first is written right after a train record of its step
        problem = f"it has no training record at step {step:,}"
    else:
        logged = sum(r["kind"] == "eval" and r["global_step"] <= step for r in records)
        csv_path = run_dir / "eval.csv"
        rows = 0
        if csv_path.exists():
            with contextlib.suppress(ValueError, KeyError, TypeError, csv.Error):
                with open(csv_path, newline="") as f:  # derived from the logs; regenerated anyway
                    rows = sum(int(row["global_step"]) <= step for row in csv.DictReader(f))
            if rows > logged:
                problem = f"it holds {logged} evaluations up to step {step:,}, eval.csv {rows}"
    if problem is not None:
        raise RunDamagedError(
            f"cannot resume {run_dir}: metrics.jsonl does not reach the checkpoint's step"
            f" {step:,} ({problem}); it was cut or edited. Nothing was changed: restore"
            " metrics.jsonl from a backup, or delete the run directory to start over."
        )


def check_sequence(cfg: ExperimentConfig) -> list[str]:
    """The task sequence of ``cfg``, after checking that this runner can train it (method parts
    known, the envpool port covers every task, CRL tasks share their sizes).

    Raises:
        ConfigError: naming the problem, before anything is created.
    """
    tasks = resolve_tasks(cfg.benchmark if cfg.tasks is None else None, cfg.tasks)
    validate_names(cfg)  # an unknown method, architecture or plug-in, before anything is created
    if cfg.env_backend == "envpool":
        _check_envpool_tasks(tasks)
    if cfg.protocol == "crl":
        _check_shared_dims(tasks)
    return tasks


def _check_envpool_tasks(tasks: list[str]) -> None:
    """Refuse, before training starts, a sequence with tasks the envpool port cannot run."""
    from sphere_rl.envs.envpool_backend import check_envpool_task

    refused = []
    for task in dict.fromkeys(tasks):
        try:
            check_envpool_task(task)
        except ValueError as err:
            refused.append(f"{task}: {err}")
    if refused:
        raise ConfigError(
            "env_backend 'envpool' cannot run every task of this sequence (use 'auto' for envpool"
            " where parity holds and the reference elsewhere):\n  " + "\n  ".join(refused)
        )


def _check_shared_dims(tasks: list[str]) -> None:
    """One agent through a sequence needs the same observation and action sizes on every task."""
    dims = {task: _task_dims(task) for task in dict.fromkeys(tasks)}
    if len(set(dims.values())) > 1:
        listed = ", ".join(f"{t} (obs {o}, act {a})" for t, (o, a) in dims.items())
        raise ConfigError(
            "protocol 'crl' trains one agent through the sequence, so every task needs the same"
            f" observation and action sizes; got {listed}. Use tasks of one family, or"
            " protocol 'rl'."
        )


def _tasks_without_snapshots(tasks: list[str], cfg: ExperimentConfig) -> list[str]:
    """The tasks whose training environments cannot be snapshotted (envpool, ``gym:`` tasks)."""
    return [
        task
        for task in dict.fromkeys(tasks)
        if task_spec(task).family not in SNAPSHOT_FAMILIES
        or resolve_backend(task, cfg.env_backend) == "envpool"
    ]


def _task_dims(task: str) -> tuple[int, int]:
    from sphere_rl.envs import task_spec

    spec = task_spec(task)
    return spec.obs_dim, spec.act_dim


def _crossed(step: int, advance: int, interval: int) -> bool:
    """Whether moving from ``step - advance`` to ``step`` passed a multiple of ``interval``."""
    return step // interval > (step - advance) // interval


__all__ = [
    "RUNTIME_KEYS",
    "ConfigError",
    "ContinualRunner",
    "ResumeError",
    "RunDamagedError",
    "RunInterrupted",
    "check_sequence",
    "decide_open",
    "derive_seed",
    "find_run_dir",
    "legacy_run_dir_name",
    "run_dir_name",
]
