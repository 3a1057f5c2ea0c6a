"""Training throughput: env steps/s of full training per preset (with the learner's share of
time), and the PPO minibatch update time of the Top-K MoE actor with and without SPHERE.

    python benchmarks/training_throughput.py            # quick: a few short iterations
    python benchmarks/training_throughput.py --full     # the presets' real rollout sizes

Prints ratios measured in the same run: SPHERE's overhead on one minibatch update, and the
learner's share of wall time during training.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sphere_rl.algo.buffer import RolloutBuffer
from sphere_rl.analysis import load_run
from sphere_rl.config import build_config
from sphere_rl.continual.runner import ContinualRunner
from sphere_rl.envs import resolve_tasks
from sphere_rl.methods import build_agent
from sphere_rl.regularizers.hooks import SphereRegularizer

# Quick mode keeps each preset's network and minibatch but shortens rollouts and epochs.
QUICK = {
    "cw10": {"num_steps": 256, "update_epochs": 2},
    "hb5": {"num_envs": 16, "num_steps": 16, "update_epochs": 2},
}


def training_throughput(preset: str, method: str, full: bool, device: str) -> dict:
    """Train three iterations on the preset's first task; report the steady-state iterations."""
    overrides = {"preset": preset, "method": method, "device": device, "eval_episodes": 1,
                 "diag_entk": False, "diag_samples": 8, "eval_interval": 10**12,
                 "diag_interval": 10**12, "checkpoint_interval": 10**12}  # fmt: skip
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
        ContinualRunner.open(cfg, Path(tmp) / "run", show_progress=False).run()
        train = load_run(Path(tmp) / "run").train[1:]  # the first iteration includes warm-up
    return {
        "sps": float(np.mean([r["sps"] for r in train])),
        "learner_fraction": float(np.mean([r["learner_fraction"] for r in train])),
        "steps_per_iteration": cfg.steps_per_iteration,
    }


def minibatch_update_time(
    obs_dim: int, act_dim: int, batch: int, repeats: int, device: str = "cpu"
) -> dict:
    """Seconds per minibatch step (actor and critic: forward, backward, optimisers), without/with
    SPHERE."""
    torch.manual_seed(0)
    cfg = build_config({"method": "topk_moe", "minibatch_size": batch, "num_envs": 1,
                        "num_steps": batch, "update_epochs": 1, "device": device})  # fmt: skip
    times = {}
    for name, regs in (("topk_moe", []), ("sphere", [SphereRegularizer()])):
        agent = build_agent(cfg, obs_dim, act_dim)
        agent.regularizers = regs
        buf = RolloutBuffer.empty(batch, 1, obs_dim, act_dim, device)
        buf.obs.normal_()
        buf.actions.normal_()
        adv = torch.randn(batch, device=device)
        obs, actions = buf.obs[:, 0], buf.actions[:, 0]
        log_probs = torch.zeros(batch, device=device)
        returns = torch.randn(batch, device=device)
        agent._minibatch_step(obs, actions, log_probs, adv, returns)  # warm-up
        samples = []
        for _ in range(repeats):
            _synchronize(device)
            start = time.perf_counter()
            agent._minibatch_step(obs, actions, log_probs, adv, returns)
            _synchronize(device)
            samples.append(time.perf_counter() - start)
        times[name] = float(np.median(samples))
    return times


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="use the presets' real rollout sizes")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--presets", default="cw10,hb5")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}")

    print("\n== PPO minibatch update of the paper-size Top-K MoE actor (E=10, k=2, 3x256)")
    for preset, (obs_dim, act_dim, batch) in {"cw10": (39, 4, 256), "hb5": (51, 19, 64)}.items():
        t = minibatch_update_time(
            obs_dim, act_dim, batch, repeats=10 if args.full else 5, device=args.device
        )
        print(
            f"{preset}: batch {batch}: topk_moe {t['topk_moe'] * 1e3:.1f} ms, sphere"
            f" {t['sphere'] * 1e3:.1f} ms -> SPHERE overhead ratio {t['sphere'] / t['topk_moe']:.2f}x"
        )

    print("\n== Full training (rollout + update), steady-state iterations")
    for preset in args.presets.split(","):
        for method in ("topk_moe", "sphere"):
            r = training_throughput(preset, method, args.full, args.device)
            print(
                f"{preset} {method}: {r['sps']:.0f} env steps/s over"
                f" {r['steps_per_iteration']}-step rollouts; learner share of time"
                f" {r['learner_fraction']:.2f} (env share {1 - r['learner_fraction']:.2f})"
            )


if __name__ == "__main__":
    main()
