"""Learner speed: the PPO minibatch update of the paper's Top-K MoE and end-to-end training env
steps/s, each against the pre-sparse reference measured in the same run.

    python benchmarks/training_throughput.py                  # quick: a few short iterations
    python benchmarks/training_throughput.py --full           # the presets' real rollout sizes
    python benchmarks/training_throughput.py --skip-training  # minibatch updates and threads only
    python benchmarks/training_throughput.py --device cuda --threads 1 --presets cw10

*Reference* = what the learner did before sparse dispatch: every expert on every state
(``dispatch="dense"``) and PyTorch's default Adam (single-tensor on the CPU). It is
rebuilt here from the current code, so improvements elsewhere (fewer host syncs) also make the
reference faster: the printed speed-ups are lower bounds on the gain over the old code.

A *minibatch update* is exactly one minibatch of :meth:`PPOAgent.update` (advantage normalisation,
actor forward/backward with the method's regularizers, critic, both optimiser steps, statistics).
Variants are timed round-robin (one of each, repeatedly) so that load from other processes on a
shared machine falls on all of them alike; medians are reported, in wall time and CPU time.
"""

# isort: off
import sphere_rl  # noqa: F401  first: sets the OpenMP wait policy before torch loads
# isort: on

import argparse
import contextlib
import multiprocessing as mp
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from sphere_rl import methods
from sphere_rl.algo.buffer import RolloutBuffer
from sphere_rl.algo.ppo import PPOAgent
from sphere_rl.analysis import load_run
from sphere_rl.config import build_config
from sphere_rl.continual.runner import ContinualRunner
from sphere_rl.envs import resolve_tasks
from sphere_rl.methods import build_agent
from sphere_rl.nn import TopKMoEActor

# Quick mode keeps each preset's network and minibatch but shortens rollouts and epochs.
QUICK = {
    "cw10": {"num_steps": 256, "update_epochs": 2},
    "hb5": {"num_envs": 16, "num_steps": 16, "update_epochs": 2},
}
# (obs_dim, act_dim, minibatch) of the presets' first tasks.
SHAPES = {"hb5": (51, 19, 64), "cw10": (39, 4, 256)}


def _reference_optimizers(agent: PPOAgent) -> None:
    """The pre-sparse learner's Adam: PyTorch's default (one tensor at a time on the CPU)."""
    agent.actor_optimizer = torch.optim.Adam(agent.actor.parameters(), agent.config.lr, eps=1e-5)
    agent.critic_optimizer = torch.optim.Adam(agent.critic.parameters(), agent.config.lr, eps=1e-5)


def _fused_optimizers(agent: PPOAgent) -> None:
    """Fused Adam (one kernel for all parameters), for ``--fused-adam``."""
    agent.actor_optimizer = torch.optim.Adam(
        agent.actor.parameters(), agent.config.lr, eps=1e-5, fused=True
    )
    agent.critic_optimizer = torch.optim.Adam(
        agent.critic.parameters(), agent.config.lr, eps=1e-5, fused=True
    )


@contextlib.contextmanager
def fused_adam(enabled: bool) -> Iterator[None]:
    """Agents built inside use fused Adam (a preview of that change to ``PPOAgent``)."""
    reset = PPOAgent.reset_optimizers
    if enabled:
        PPOAgent.reset_optimizers = _fused_optimizers
    try:
        yield
    finally:
        PPOAgent.reset_optimizers = reset


@contextlib.contextmanager
def reference_learner() -> Iterator[None]:
    """Agents built inside use the reference learner (dense dispatch, single-tensor Adam)."""
    build_actor, reset = methods.build_actor, PPOAgent.reset_optimizers

    def dense_actor(*args, **kwargs):
        actor = build_actor(*args, **kwargs)
        if isinstance(actor, TopKMoEActor):
            actor.dispatch = "dense"
        return actor

    methods.build_actor = dense_actor
    PPOAgent.reset_optimizers = _reference_optimizers
    try:
        yield
    finally:
        methods.build_actor, PPOAgent.reset_optimizers = build_actor, reset


def _update_agent(
    obs_dim: int, act_dim: int, batch: int, reference: bool, sphere: bool, fused: bool, device: str
):
    """An agent and a one-minibatch rollout: ``agent.update`` then runs exactly one update."""
    cfg = build_config({"method": "sphere" if sphere else "topk_moe", "minibatch_size": batch,
                        "num_envs": 1, "num_steps": batch, "update_epochs": 1,
                        "device": device})  # fmt: skip
    torch.manual_seed(0)
    with reference_learner() if reference else fused_adam(fused):
        agent = build_agent(cfg, obs_dim, act_dim)
    buf = RolloutBuffer.empty(batch, 1, obs_dim, act_dim, device)
    buf.obs.normal_()
    buf.actions.normal_()
    with torch.no_grad():
        _, log_probs, values = agent.act(buf.obs[:, 0])
    buf.log_probs[:, 0], buf.values[:, 0] = log_probs, values
    adv, returns = torch.randn(batch, 1, device=device), torch.randn(batch, 1, device=device)
    return agent, lambda: agent.update(buf, adv, returns)


def time_updates(
    obs_dim: int,
    act_dim: int,
    batch: int,
    threads: int,
    repeats: int,
    fused: bool = False,
    device: str = "cpu",
) -> dict[str, dict[str, float]]:
    """Median wall and CPU milliseconds of one minibatch update per variant, at ``threads``."""
    torch.set_num_threads(threads)
    shape = (obs_dim, act_dim, batch)
    variants = {
        "reference": _update_agent(*shape, True, False, False, device)[1],
        "topk_moe": _update_agent(*shape, False, False, fused, device)[1],
        "sphere": _update_agent(*shape, False, True, fused, device)[1],
        "reference_sphere": _update_agent(*shape, True, True, False, device)[1],
    }
    samples = {name: ([], []) for name in variants}
    for rep in range(repeats + 2):  # two warm-up rounds
        for name, update in variants.items():
            wall, cpu = time.perf_counter(), time.process_time()
            update()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if rep >= 2:
                samples[name][0].append(time.perf_counter() - wall)
                samples[name][1].append(time.process_time() - cpu)
    return {
        name: {"wall_ms": 1e3 * float(np.median(w)), "cpu_ms": 1e3 * float(np.median(c))}
        for name, (w, c) in samples.items()
    }


def _spin(stop) -> None:  # a competing process: keeps one core busy
    while not stop.is_set():
        sum(range(10_000))


@contextlib.contextmanager
def busy_core(enabled: bool) -> Iterator[None]:
    """Keep one core busy in another process (a shared machine's neighbour) while inside."""
    if not enabled:
        yield
        return
    stop = mp.get_context("spawn").Event()
    proc = mp.get_context("spawn").Process(target=_spin, args=(stop,), daemon=True)
    proc.start()
    try:
        yield
    finally:
        stop.set()
        proc.join(timeout=10)
        if proc.is_alive():
            proc.terminate()


def training_throughput(
    preset: str, method: str, full: bool, reference: bool, fused: bool = False, device: str = "cpu"
) -> dict:
    """Train three iterations on the preset's first task; report the steady-state iterations."""
    overrides = {"preset": preset, "method": method, "eval_episodes": 1, "diag_entk": False,
                 "device": device,
                 "diag_samples": 8, "eval_interval": 10**12, "diag_interval": 10**12,
                 "checkpoint_interval": 10**12, "torch_threads": 1}  # fmt: skip
    if not full:
        overrides.update(QUICK[preset])
    base = build_config(overrides)
    cfg = build_config(
        {
            **overrides,
            "benchmark": None,
            "tasks": resolve_tasks(base.benchmark)[:1],
            "steps_per_task": 3 * base.steps_per_iteration,
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        with reference_learner() if reference else fused_adam(fused):
            ContinualRunner.open(cfg, Path(tmp) / "run", show_progress=False).run()
        train = load_run(Path(tmp) / "run").train[1:]  # the first iteration includes warm-up
    return {
        "sps": float(np.mean([r["sps"] for r in train])),
        "learner_fraction": float(np.mean([r["learner_fraction"] for r in train])),
        "steps_per_iteration": cfg.steps_per_iteration,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="use the presets' real rollout sizes")
    parser.add_argument("--presets", default="hb5,cw10")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", default="1,2", help="thread counts for the update timings")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--busy", action="store_true", help="also time with one core kept busy")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--skip-updates", action="store_true")
    parser.add_argument("--methods", default="topk_moe,sphere", help="for the training runs")
    parser.add_argument(
        "--fused-adam", action="store_true", help="current learner with fused Adam (preview)"
    )
    args = parser.parse_args()
    presets = args.presets.split(",")
    print(
        f"torch {torch.__version__}, device {args.device}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')},"
        f" cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f},"
        f" current learner's Adam: {'fused' if args.fused_adam else 'as PPOAgent builds it'}"
    )

    print("\n== One PPO minibatch update, paper Top-K MoE (E=10, k=2, 3x256), dense 3x256 critic")
    print(
        "   medians, ms wall / ms CPU; speed-up = reference / topk_moe; SPHERE = sphere / topk_moe"
    )
    one_thread: dict[tuple[str, bool], dict] = {}
    for busy in () if args.skip_updates else (False, True) if args.busy else (False,):
        with busy_core(busy):
            for preset in presets:
                obs_dim, act_dim, batch = SHAPES[preset]
                for threads in [int(t) for t in args.threads.split(",")]:
                    t = time_updates(
                        obs_dim, act_dim, batch, threads, args.repeats, args.fused_adam, args.device
                    )
                    ref, topk, sph = t["reference"], t["topk_moe"], t["sphere"]
                    if threads == 1:
                        one_thread[(preset, busy)] = topk
                    vs_one = one_thread.get((preset, busy), topk)["wall_ms"] / topk["wall_ms"]
                    print(
                        f"{preset} batch {batch}, {threads} thread(s){', busy core' if busy else ''}:"
                        + "".join(
                            f" {k} {v['wall_ms']:.1f}/{v['cpu_ms']:.1f}" for k, v in t.items()
                        )
                        + f" | speed-up {ref['wall_ms'] / topk['wall_ms']:.2f}x"
                        f" (CPU {ref['cpu_ms'] / topk['cpu_ms']:.2f}x),"
                        f" SPHERE {sph['wall_ms'] / topk['wall_ms']:.2f}x"
                        f" (CPU {sph['cpu_ms'] / topk['cpu_ms']:.2f}x, reference"
                        f" {t['reference_sphere']['wall_ms'] / ref['wall_ms']:.2f}x),"
                        f" topk_moe vs 1 thread {vs_one:.2f}x"
                    )
    torch.set_num_threads(1)
    if args.skip_training:
        return

    print("\n== Full training (rollout + update) on one core, steady-state iterations")
    for preset in presets:
        for method in args.methods.split(","):
            runs = {
                name: training_throughput(
                    preset, method, args.full, name == "reference", args.fused_adam, args.device
                )
                for name in ("reference", "current")
            }
            ref, cur = runs["reference"], runs["current"]
            print(
                f"{preset} {method}: {cur['sps']:.0f} env steps/s (reference {ref['sps']:.0f})"
                f" -> {cur['sps'] / ref['sps']:.2f}x over {cur['steps_per_iteration']}-step"
                f" rollouts; learner share {cur['learner_fraction']:.2f}"
                f" (reference {ref['learner_fraction']:.2f})"
            )


if __name__ == "__main__":
    main()
