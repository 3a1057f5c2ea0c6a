"""The continual-RL runner: one agent (``crl``) or one fresh agent per task (``rl``) through a
task sequence, with periodic evaluation, plasticity diagnostics, checkpoints and exact resume.

Reproducible resume rests on one design choice: training on a task is cut into *segments* of
``checkpoint_interval`` env steps, and every segment starts by resetting all environments with a
seed derived from (run seed, task, iteration), in the uninterrupted run as well. A checkpoint is
written at each segment start (weights, optimisers, normaliser, RNG states, counters), so a resumed
run replays exactly the same streams. Evaluation and diagnostics use their own seeded environments
and draw no random numbers from the training streams.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import sphere_rl
from sphere_rl.algo.buffer import RolloutBuffer, compute_gae
from sphere_rl.algo.ppo import NonFiniteLossError, PPOAgent
from sphere_rl.config import ConfigError, ExperimentConfig, build_config, config_diff
from sphere_rl.continual.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from sphere_rl.continual.evaluation import evaluate, probe_states
from sphere_rl.continual.progress import ProgressDisplay
from sphere_rl.continual.rundir import (
    JsonlLog,
    atomic_write_json,
    read_json,
    write_eval_csv,
)
from sphere_rl.continual.tensorboard import TensorBoardLog
from sphere_rl.envs import make_vector_env, resolve_tasks
from sphere_rl.methods import build_agent, resolve_method

# Stream identifiers for derive_seed: each random stream of a run has its own key.
AGENT_STREAM, ENV_STREAM, EVAL_STREAM, PROBE_STREAM = 1, 2, 3, 4


def derive_seed(seed: int, *keys: int) -> int:
    """A 31-bit seed for one stream of a run, independent of every other stream."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0] % (2**31 - 1))


class ResumeError(RuntimeError):
    """A run directory cannot be resumed with the given configuration."""


@dataclass
class RunState:
    task_index: int = 0
    iteration: int = 0  # completed iterations on the current task
    global_step: int = 0
    task_started: bool = False  # the task-start setup (fresh agent / optimiser reset) is done


def run_dir_name(cfg: ExperimentConfig) -> str:
    """Deterministic directory name, so re-running the same experiment finds its run."""
    what = cfg.benchmark if cfg.tasks is None else "custom-" + "-".join(cfg.tasks)[:60]
    extra = "" if (cfg.arch is None and cfg.reg is None) else f"-{cfg.arch}-{cfg.reg}"
    return f"{what}-{cfg.protocol}-{cfg.method}{extra}-s{cfg.seed}"


class ContinualRunner:
    """Train (or resume) one experiment in ``run_dir``.

    Use :meth:`open` to create a new run or resume an existing one; then :meth:`run`.
    """

    def __init__(self, cfg: ExperimentConfig, run_dir: Path, show_progress: bool = True) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.tasks = resolve_tasks(cfg.benchmark if cfg.tasks is None else None, cfg.tasks)
        resolve_method(cfg)  # fail fast on an unknown method, architecture or regularizer
        if cfg.env_backend == "envpool":
            _check_envpool_tasks(self.tasks)
        if cfg.protocol == "crl":
            _check_shared_dims(self.tasks)
        self.show_progress = show_progress
        self.state = RunState()
        self.metrics = JsonlLog(self.run_dir / "metrics.jsonl")
        self.eval_records: list[dict[str, Any]] = []
        self._probes: dict[int, np.ndarray] = {}
        self.agent: PPOAgent | None = None
        self.initial_actor: dict[str, torch.Tensor] | None = None
        self._restored_from: dict[str, Any] | None = None

    # ----------------------------------------------------------------------------- creation
    @classmethod
    def open(
        cls, cfg: ExperimentConfig | None, run_dir: Path, show_progress: bool = True
    ) -> ContinualRunner:
        """Start a new run in ``run_dir``, or resume the one there.

        Resuming compares ``cfg`` (if given) with the saved configuration and refuses any change,
        naming the differing keys.
        """
        run_dir = Path(run_dir)
        config_path = run_dir / "config.json"
        if config_path.exists():
            saved = read_json(config_path)
            if cfg is not None:
                diff = config_diff(saved, cfg.to_dict())
                if diff:
                    details = ", ".join(
                        f"{k}: {saved.get(k)!r} → {cfg.to_dict().get(k)!r}" for k in diff
                    )
                    raise ResumeError(
                        f"{run_dir} was started with a different configuration; differing keys:"
                        f" {details}. Resume without changing them, or use another --out."
                    )
            runner = cls(build_config(saved), run_dir, show_progress)
            runner._restore()
            return runner
        if cfg is None:
            raise ResumeError(f"{run_dir} is not a run directory (no config.json)")
        run_dir.mkdir(parents=True, exist_ok=True)
        runner = cls(cfg, run_dir, show_progress)
        arch, regs = resolve_method(cfg)
        atomic_write_json(
            run_dir / "run.json",
            {"tasks": runner.tasks, "arch": arch, "regularizers": regs,
             "version": sphere_rl.__version__},
        )  # fmt: skip
        atomic_write_json(config_path, cfg.to_dict())
        runner._write_status("running")
        return runner

    @property
    def status(self) -> dict[str, Any]:
        path = self.run_dir / "status.json"
        return read_json(path) if path.exists() else {"state": "new"}

    # ----------------------------------------------------------------------------- main loop
    def run(self) -> dict[str, Any]:
        """Train through the remaining tasks; returns the final status. A finished run is a no-op."""
        if self.status.get("state") == "finished":
            return self.status
        if self.cfg.torch_threads > 0:
            torch.set_num_threads(self.cfg.torch_threads)
        total = len(self.tasks) * self.cfg.iterations_per_task * self.cfg.steps_per_iteration
        self.tensorboard = TensorBoardLog(
            self.run_dir / "tb", self.state.global_step + 1, self.cfg.to_dict(), self.eval_records
        )
        try:
            with ProgressDisplay(total, self.show_progress, self.run_dir.name) as progress:
                self.progress = progress
                while self.state.task_index < len(self.tasks):
                    self._run_task(self.state.task_index)
        except NonFiniteLossError as err:
            self._write_status("failed", error=str(err))
            raise
        except Exception as err:  # any crash: say so in status.json; the checkpoint stays valid
            self._write_status("failed", error=f"{type(err).__name__}: {err}")
            raise
        finally:
            self.tensorboard.close()
        self._write_status("finished")
        return self.status

    def _run_task(self, t: int) -> None:
        cfg, task = self.cfg, self.tasks[t]
        if not self.state.task_started:
            self._start_task(t)
        env = make_vector_env(
            task, cfg.num_envs, seed=derive_seed(cfg.seed, ENV_STREAM, t),
            vectorization=cfg.vectorization, backend=cfg.env_backend,
        )  # fmt: skip
        segment = max(1, cfg.checkpoint_interval // cfg.steps_per_iteration)
        obs = None
        try:
            for it in range(self.state.iteration, cfg.iterations_per_task):
                if it % segment == 0 or obs is None:
                    if self._restored_from != asdict(self.state):  # else: it is on disk already
                        self._save_checkpoint()
                    obs = env.reset(seed=derive_seed(cfg.seed, ENV_STREAM, t, it))
                obs = self._iteration(env, obs, t, it)
                self._periodic(t)
        finally:
            env.close()
        self._end_task(t)

    def _start_task(self, t: int) -> None:
        cfg = self.cfg
        obs_dim, act_dim = _task_dims(self.tasks[t])
        if self.agent is None or cfg.protocol == "rl":
            torch.manual_seed(derive_seed(cfg.seed, AGENT_STREAM, t if cfg.protocol == "rl" else 0))
            self.agent = build_agent(cfg, obs_dim, act_dim)
            self.initial_actor = {k: v.clone() for k, v in self.agent.actor.state_dict().items()}
        elif not cfg.carry_optimizer:
            self.agent.reset_optimizers()
        for callback in self.agent.callbacks:
            callback.on_task_start(self.agent, t)
        self.state.task_started = True
        self.progress.message(f"[bold]task {t + 1}/{len(self.tasks)}[/bold]: {self.tasks[t]}")

    def _iteration(self, env, obs: np.ndarray, t: int, it: int) -> np.ndarray:
        cfg, agent = self.cfg, self.agent
        if cfg.lr_schedule == "linear":
            frac = it / cfg.iterations_per_task
            agent.set_learning_rate(cfg.lr + frac * (cfg.lr_final - cfg.lr))
        elif cfg.lr_schedule == "constant":
            agent.set_learning_rate(cfg.lr)
        start = time.perf_counter()
        buffer, obs, next_done, episodes = self._collect(env, obs)
        rollout_time = time.perf_counter() - start
        next_value = agent.value(agent.obs_tensor(obs))
        advantages, returns = compute_gae(
            buffer.rewards, buffer.values, buffer.dones, next_value, next_done,
            cfg.gamma, cfg.gae_lambda,
        )  # fmt: skip
        stats = agent.update(buffer, advantages, returns)
        elapsed = time.perf_counter() - start
        self.state.iteration = it + 1
        self.state.global_step += cfg.steps_per_iteration
        record = {
            "kind": "train",
            "global_step": self.state.global_step,
            "task_index": t,
            "task": self.tasks[t],
            "iteration": it + 1,
            "sps": cfg.steps_per_iteration / elapsed,
            "learner_fraction": 1.0 - rollout_time / elapsed,
            "episode/count": len(episodes["success"]),
            "episode/success": _mean(episodes["success"]),
            "episode/return": _mean(episodes["return"]),
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

    def _collect(self, env, obs: np.ndarray):
        cfg, agent = self.cfg, self.agent
        buffer = RolloutBuffer.empty(
            cfg.num_steps, cfg.num_envs, env.obs_dim, env.act_dim, cfg.device
        )
        done = torch.zeros(cfg.num_envs, device=cfg.device)
        episodes: dict[str, list[float]] = {"success": [], "return": []}
        agent.actor.train()
        for step in range(cfg.num_steps):
            agent.normalizer.update(obs)
            obs_t = agent.obs_tensor(obs)
            actions, log_probs, values = agent.act(obs_t)
            result = env.step(actions.cpu().numpy())
            reward = torch.as_tensor(result.reward, device=cfg.device)
            truncated_only = result.truncated & ~result.terminated
            if truncated_only.any():  # bootstrap the value of the state the time limit cut off
                final = agent.obs_tensor(result.final_obs[truncated_only])
                reward[torch.as_tensor(truncated_only)] += cfg.gamma * agent.value(final)
            buffer.obs[step], buffer.actions[step] = obs_t, actions
            buffer.log_probs[step], buffer.values[step] = log_probs, values
            buffer.rewards[step], buffer.dones[step] = reward, done
            done = torch.as_tensor(result.done, dtype=torch.float32, device=cfg.device)
            ended = result.done
            episodes["success"] += result.episode_success[ended].tolist()
            episodes["return"] += result.episode_return[ended].tolist()
            obs = result.obs
        return buffer, obs, done, episodes

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
        save_checkpoint(
            self.run_dir / "checkpoints" / f"task_{t:03d}_end.pt", self._checkpoint_payload()
        )
        self.state = RunState(task_index=t + 1, global_step=self.state.global_step)
        self._save_checkpoint()

    def _evaluate(self, t: int, eval_tasks, kind: str) -> None:
        for j in eval_tasks:
            seed = derive_seed(self.cfg.seed, EVAL_STREAM, j)
            result = evaluate(
                self.agent, self.tasks[j], self.cfg.eval_episodes, seed, self.cfg.env_backend
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

    def _diagnose(self, t: int) -> None:
        from sphere_rl.metrics import plasticity_report

        cfg = self.cfg
        if t not in self._probes:
            seed = derive_seed(cfg.seed, PROBE_STREAM, t)
            self._probes[t] = probe_states(
                self.tasks[t], cfg.diag_samples, seed, env_backend=cfg.env_backend
            )
        obs = self.agent.obs_tensor(self._probes[t])
        report = plasticity_report(
            self.agent.actor, obs, initial_state=self.initial_actor, include_entk=cfg.diag_entk
        )
        self._log({"kind": "diag", "global_step": self.state.global_step, "task_index": t,
                   "task": self.tasks[t], **report})  # fmt: skip
        rank = report.get("entk/effective_rank")
        if rank is not None:
            self.progress.update(self.state.global_step, rank=f"{rank:.1f}")

    # ----------------------------------------------------------------------------- persistence
    def _log(self, record: dict[str, Any]) -> None:
        self.metrics.append(record)
        self.tensorboard.log(record)

    def _checkpoint_payload(self) -> dict[str, Any]:
        return {
            "state": asdict(self.state),
            "agent": self.agent.state_dict() if self.agent is not None else None,
            "initial_actor": self.initial_actor,
            "rng": capture_rng_state(),
            "config": self.cfg.to_dict(),
            "tasks": self.tasks,
            "obs_dim": self.agent.actor.obs_dim if self.agent else None,
            "act_dim": self.agent.actor.act_dim if self.agent else None,
        }

    def _save_checkpoint(self) -> None:
        save_checkpoint(self.run_dir / "checkpoints" / "latest.pt", self._checkpoint_payload())
        self._write_status("running")

    def _restore(self) -> None:
        path = self.run_dir / "checkpoints" / "latest.pt"
        if not path.exists():
            return  # killed before the first checkpoint: start over
        payload = load_checkpoint(path)
        self.state = RunState(**payload["state"])
        if payload["agent"] is not None:
            self.agent = build_agent(self.cfg, payload["obs_dim"], payload["act_dim"])
            self.agent.load_state_dict(payload["agent"])
            self.initial_actor = payload["initial_actor"]
        restore_rng_state(payload["rng"])
        self._restored_from = asdict(self.state)
        kept = self.metrics.truncate_after(self.state.global_step)
        self.eval_records = [{**r, "kind": r["eval_kind"]} for r in kept if r["kind"] == "eval"]
        write_eval_csv(self.run_dir / "eval.csv", self.eval_records)

    def _write_status(self, state: str, error: str | None = None) -> None:
        atomic_write_json(
            self.run_dir / "status.json",
            {
                "state": state,
                "task_index": self.state.task_index,
                "tasks": len(self.tasks),
                "global_step": self.state.global_step,
                "error": error,
                "updated": time.time(),
            },
        )


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
        raise ValueError(
            "env_backend 'envpool' cannot run every task of this sequence (use 'auto' for envpool"
            " where parity holds and the reference elsewhere):\n  " + "\n  ".join(refused)
        )


def _check_shared_dims(tasks: list[str]) -> None:
    """One agent through a sequence needs the same observation and action sizes on every task."""
    dims = {task: _task_dims(task) for task in dict.fromkeys(tasks)}
    if len(set(dims.values())) > 1:
        listed = ", ".join(f"{t} (obs {o}, act {a})" for t, (o, a) in dims.items())
        raise ValueError(
            "protocol 'crl' trains one agent through the sequence, so every task needs the same"
            f" observation and action sizes; got {listed}. Use tasks of one family, or"
            " protocol 'rl'."
        )


def _task_dims(task: str) -> tuple[int, int]:
    from sphere_rl.envs import task_spec

    spec = task_spec(task)
    return spec.obs_dim, spec.act_dim


def _crossed(step: int, advance: int, interval: int) -> bool:
    """Whether moving from ``step - advance`` to ``step`` passed a multiple of ``interval``."""
    return step // interval > (step - advance) // interval


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


__all__ = ["ConfigError", "ContinualRunner", "ResumeError", "derive_seed", "run_dir_name"]
