"""Learner speed: the PPO minibatch update of the paper's Top-K MoE and end-to-end training env
steps/s, each against the pre-sparse reference measured in the same run.

    python benchmarks/training_throughput.py                  # quick: a few short iterations
    python benchmarks/training_throughput.py --full           # the presets' real rollout sizes
    python benchmarks/training_throughput.py --skip-training  # minibatch updates and threads only
    python benchmarks/training_throughput.py --device cuda --threads 1 --presets cw10

*Reference* = what the learner did before this work: every expert on every state
(``dispatch="dense"``), PyTorch's default Adam (single-tensor on the CPU), all minibatches at the
run's thread count, glibc's default allocator. It is rebuilt here from the current code, so
improvements elsewhere (fewer host syncs) also make the reference faster: the printed speed-ups
are lower bounds on the gain over the old code. The update timings share one process, so the
reference there also gets the allocator setting (:func:`sphere_rl.runtime.keep_freed_memory`,
whose effect is printed on its own); each training run is a fresh process, the reference's with
the default allocator.

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
import resource
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
from sphere_rl.continual import runner as runner_module
from sphere_rl.continual.runner import ContinualRunner
from sphere_rl.envs import resolve_tasks
from sphere_rl.nn import TopKMoEActor
from sphere_rl.runtime import LearnerThreads, keep_freed_memory

# Quick mode keeps each preset's network and minibatch but shortens rollouts and epochs.
QUICK = {
    "cw10": {"num_steps": 256, "update_epochs": 2},
    "hb5": {"num_envs": 16, "num_steps": 16, "update_epochs": 2},
}
# (obs_dim, act_dim, minibatch) of the presets' first tasks.
SHAPES = {"hb5": (51, 19, 64), "cw10": (39, 4, 256)}
TOP_K = build_config({}).top_k  # experts each state is routed to, in every preset


def _reference_optimizers(agent: PPOAgent) -> None:
    """The pre-sparse learner's Adam: PyTorch's default (one tensor at a time on the CPU)."""
    agent.actor_optimizer = torch.optim.Adam(agent.actor.parameters(), agent.config.lr, eps=1e-5)
    agent.critic_optimizer = torch.optim.Adam(agent.critic.parameters(), agent.config.lr, eps=1e-5)


@contextlib.contextmanager
def reference_learner() -> Iterator[None]:
    """Agents built inside use the reference learner (dense dispatch, single-tensor Adam, no
    per-minibatch thread choice)."""
    build_actor, reset, build = methods.build_actor, PPOAgent.reset_optimizers, methods.build_agent

    def dense_actor(*args, **kwargs):
        actor = build_actor(*args, **kwargs)
        if isinstance(actor, TopKMoEActor):
            actor.dispatch = "dense"
        return actor

    def fixed_threads_agent(*args, **kwargs):
        agent = build(*args, **kwargs)
        agent.learner_threads = LearnerThreads(1)  # a no-op: the global thread count applies
        return agent

    methods.build_actor = dense_actor
    PPOAgent.reset_optimizers = _reference_optimizers
    methods.build_agent = runner_module.build_agent = fixed_threads_agent
    try:
        yield
    finally:
        methods.build_actor, PPOAgent.reset_optimizers = build_actor, reset
        methods.build_agent = runner_module.build_agent = build


def _update_agent(
    obs_dim: int,
    act_dim: int,
    batch: int,
    reference: bool,
    sphere: bool,
    device: str,
    threads: int = 1,
    choose_threads: bool = True,
    **overrides,
):
    """An agent and a one-minibatch rollout: ``agent.update`` then runs exactly one update."""
    cfg = build_config({"method": "sphere" if sphere else "topk_moe", "minibatch_size": batch,
                        "num_envs": 1, "num_steps": batch, "update_epochs": 1,
                        "device": device, "torch_threads": threads, **overrides})  # fmt: skip
    torch.manual_seed(0)
    with reference_learner() if reference else contextlib.nullcontext():
        agent = methods.build_agent(cfg, obs_dim, act_dim)
    if not choose_threads:
        agent.learner_threads = LearnerThreads(1)
    buf = RolloutBuffer.empty(batch, 1, obs_dim, act_dim, device)
    buf.obs.normal_()
    buf.actions.normal_()
    with torch.no_grad():
        _, log_probs, values = agent.act(buf.obs[:, 0])
    buf.log_probs[:, 0], buf.values[:, 0] = log_probs, values
    adv, returns = torch.randn(batch, 1, device=device), torch.randn(batch, 1, device=device)
    return agent, lambda: agent.update(buf, adv, returns)


def _dense_k_experts(shape: tuple[int, int, int], device: str, threads: int):
    """The current learner with ``E = k`` experts, every one on every state (see time_updates)."""
    agent, update = _update_agent(*shape, False, False, device, threads,
                                  n_experts=TOP_K)  # fmt: skip
    agent.actor.dispatch = "dense"
    return update


def _actor_adam_step(shape: tuple[int, int, int], device: str, **overrides):
    """One step of the current learner's actor Adam, on random gradients."""
    agent, _ = _update_agent(*shape, False, False, device, **overrides)
    for param in agent.actor.parameters():
        param.grad = torch.randn_like(param)
    return agent.actor_optimizer.step


def _at_one_thread(update, threads: int):
    def one_thread_update():
        torch.set_num_threads(1)
        try:
            update()
        finally:
            torch.set_num_threads(threads)

    return one_thread_update


def time_updates(
    obs_dim: int,
    act_dim: int,
    batch: int,
    threads: int,
    repeats: int,
    device: str = "cpu",
) -> dict[str, dict[str, float]]:
    """Median wall and CPU milliseconds of one minibatch update per variant, at ``threads``.

    ``dense_k_experts`` is the current learner with only ``top_k`` experts (``E = k``), run
    densely: every expert on every state is then exactly the expert FLOPs top-k dispatch must do,
    in full-batch matmuls, without routing bookkeeping, and Adam steps over ``k`` experts' weights
    instead of ``E``'s. Exact top-k training must still step Adam over all ``E`` experts (a
    zero gradient still moves a weight through its moments), so the two actor Adam steps are timed
    too (``adam_all_experts``, ``adam_k_experts``) and ``reference / (dense_k_experts +
    adam_all_experts - adam_k_experts)`` bounds from above the speed-up any dispatch of this model
    with these optimisers can reach.

    At more than one thread, two more variants of the current learner run in the same rounds:
    ``topk_moe_forced`` with every minibatch at ``threads`` and ``topk_moe_1thread`` with the whole
    update at one thread (the two :class:`~sphere_rl.runtime.LearnerThreads` chooses between).
    """
    torch.set_num_threads(threads)
    shape = (obs_dim, act_dim, batch)
    variants = {
        "reference": _update_agent(*shape, True, False, device, threads)[1],
        "topk_moe": _update_agent(*shape, False, False, device, threads)[1],
        "sphere": _update_agent(*shape, False, True, device, threads)[1],
        "reference_sphere": _update_agent(*shape, True, True, device, threads)[1],
        "dense_k_experts": _dense_k_experts(shape, device, threads),
        "adam_all_experts": _actor_adam_step(shape, device),
        "adam_k_experts": _actor_adam_step(shape, device, n_experts=TOP_K),
    }
    if threads > 1:
        variants["topk_moe_forced"] = _update_agent(*shape, False, False, device, threads, False)[1]
        variants["topk_moe_1thread"] = _at_one_thread(
            _update_agent(*shape, False, False, device, threads, False)[1], threads
        )
    samples = {name: ([], []) for name in variants}
    warm_up = 2 + (2 * (LearnerThreads(2).trials + 1) if threads > 1 else 0)  # + thread choice
    for rep in range(repeats + warm_up):
        for name, update in variants.items():
            wall, cpu = time.perf_counter(), time.process_time()
            update()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if rep >= warm_up:
                samples[name][0].append(time.perf_counter() - wall)
                samples[name][1].append(time.process_time() - cpu)
    return {
        name: {"wall_ms": 1e3 * float(np.median(w)), "cpu_ms": 1e3 * float(np.median(c))}
        for name, (w, c) in samples.items()
    }


def _ideal_cpu_ms(t: dict[str, dict[str, float]]) -> float:
    """CPU ms of a top-k update with no dispatch cost at all (see :func:`time_updates`)."""
    adam = t["adam_all_experts"]["cpu_ms"] - t["adam_k_experts"]["cpu_ms"]
    return t["dense_k_experts"]["cpu_ms"] + adam


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
    preset: str, method: str, full: bool, reference: bool, device: str = "cpu"
) -> dict:
    """Train three iterations on the preset's first task; report the steady-state iterations.

    Runs in the calling process; :func:`training_throughput_fresh` runs it in a new one.
    """
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
        with reference_learner() if reference else contextlib.nullcontext():
            if reference:  # the old runner left glibc's allocator alone
                runner_module.keep_freed_memory = lambda: False
            ContinualRunner.open(cfg, Path(tmp) / "run", show_progress=False).run()
        train = load_run(Path(tmp) / "run").train[1:]  # the first iteration includes warm-up
    return {
        "sps": float(np.mean([r["sps"] for r in train])),
        "learner_fraction": float(np.mean([r["learner_fraction"] for r in train])),
        "steps_per_iteration": cfg.steps_per_iteration,
    }


def training_throughput_fresh(*args) -> dict:
    """:func:`training_throughput` in a fresh process (process-wide settings do not leak)."""
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(training_throughput, args)


def allocator_effect(obs_dim: int, act_dim: int, batch: int, repeats: int) -> dict[str, float]:
    """Page faults and CPU ms per topk_moe update before and after ``keep_freed_memory``.

    Call before anything else in the process has applied the setting (it cannot be undone).
    """
    update = _update_agent(obs_dim, act_dim, batch, False, False, "cpu")[1]
    result = {}
    for name in ("default", "kept"):
        if name == "kept":
            keep_freed_memory()
        for _ in range(3):
            update()
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        cpu = []
        for _ in range(repeats):
            start = time.process_time()
            update()
            cpu.append(time.process_time() - start)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        result[f"{name}_faults"] = faults / repeats
        result[f"{name}_cpu_ms"] = 1e3 * float(np.median(cpu))
    return result


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
    parser.add_argument("--batches", help="minibatch sizes for the update timings (default:"
                        " each preset's own), e.g. 64,256")  # fmt: skip
    args = parser.parse_args()
    presets = args.presets.split(",")

    def batches(preset: str) -> list[int]:
        return [int(b) for b in args.batches.split(",")] if args.batches else [SHAPES[preset][2]]

    print(
        f"torch {torch.__version__}, device {args.device}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')},"
        f" cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}"
    )
    torch.set_num_threads(1)
    if args.device == "cpu" and not args.skip_updates:
        print("\n== Allocator: one topk_moe update, 1 thread, glibc default vs keep_freed_memory()")
        for preset in presets:
            a = allocator_effect(*SHAPES[preset], args.repeats)
            print(
                f"{preset}: page faults per update {a['default_faults']:.0f} ->"
                f" {a['kept_faults']:.0f}; CPU ms {a['default_cpu_ms']:.1f} ->"
                f" {a['kept_cpu_ms']:.1f} ({a['default_cpu_ms'] / a['kept_cpu_ms']:.2f}x)"
            )
    keep_freed_memory()  # as the runner does, for every variant below

    print("\n== One PPO minibatch update, paper Top-K MoE (E=10, k=2, 3x256), dense 3x256 critic")
    print(
        "   medians, ms wall / ms CPU; speed-up = reference / topk_moe; SPHERE = sphere / topk_moe"
    )
    for busy in () if args.skip_updates else (False, True) if args.busy else (False,):
        with busy_core(busy):
            for preset, batch in [(p, b) for p in presets for b in batches(p)]:
                obs_dim, act_dim, _ = SHAPES[preset]
                for threads in [int(t) for t in args.threads.split(",")]:
                    t = time_updates(obs_dim, act_dim, batch, threads, args.repeats, args.device)
                    ref, topk, sph = t["reference"], t["topk_moe"], t["sphere"]
                    one = t.get("topk_moe_1thread", topk)["wall_ms"]
                    print(
                        f"{preset} batch {batch}, {threads} thread(s){', busy core' if busy else ''}:"
                        + "".join(
                            f" {k} {v['wall_ms']:.1f}/{v['cpu_ms']:.1f}" for k, v in t.items()
                        )
                        + f" | speed-up {ref['wall_ms'] / topk['wall_ms']:.2f}x"
                        f" (CPU {ref['cpu_ms'] / topk['cpu_ms']:.2f}x;"
                        f" bound {ref['cpu_ms'] / _ideal_cpu_ms(t):.2f}x),"
                        f" SPHERE {sph['wall_ms'] / topk['wall_ms']:.2f}x"
                        f" (CPU {sph['cpu_ms'] / topk['cpu_ms']:.2f}x, reference"
                        f" {t['reference_sphere']['wall_ms'] / ref['wall_ms']:.2f}x),"
                        f" topk_moe vs 1 thread {one / topk['wall_ms']:.2f}x"
                        + (
                            f" (every minibatch at {threads} threads:"
                            f" {one / t['topk_moe_forced']['wall_ms']:.2f}x)"
                            if threads > 1
                            else ""
                        )
                    )
    torch.set_num_threads(1)
    if args.skip_training:
        return

    print("\n== Full training (rollout + update) on one core, steady-state iterations")
    for preset in presets:
        for method in args.methods.split(","):
            runs = {
                name: training_throughput_fresh(
                    preset, method, args.full, name == "reference", args.device
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
