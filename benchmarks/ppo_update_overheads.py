"""PPO update overheads: foreach and fused Adam against the per-parameter loop, in one run.

    python benchmarks/ppo_update_overheads.py [--threads 1] [--device cpu] [--repeats 5]

Times one whole ``PPOAgent.update`` (all epochs and minibatches: actor, critic, advantage
normalisation, both optimiser steps) on a random rollout of each preset's size with the paper's
Top-K MoE actor, with the per-parameter loop Adam (the reference), the default ``foreach`` Adam
(bit-identical parameters, ``tests/algo/test_release_rules.py``) and ``fused`` Adam
(``adam_kernel: fused``, rounds differently), and prints the ratios against the loop.

On the CPU the clock is the process's CPU time (``time.process_time``, one thread by default), so a
busy shared machine inflates neither side; on CUDA it is wall time after a synchronisation.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import sphere_rl.algo.ppo as ppo
from sphere_rl.algo.buffer import RolloutBuffer
from sphere_rl.config import build_config
from sphere_rl.methods import build_agent

# (preset, obs_dim, act_dim, rollout steps per update used here)
CASES = [("hb5", 51, 19, 128 * 16), ("cw10", 39, 4, 4096)]


def time_update(preset, obs_dim, act_dim, steps, kernel, repeats, device) -> float:
    cfg = build_config({"preset": preset, "method": "topk_moe", "update_epochs": 1,
                        "device": device})  # fmt: skip
    original = ppo.make_adam
    flags = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    ppo.make_adam = lambda module, lr, _kernel: torch.optim.Adam(
        module.parameters(), lr, eps=1e-5, **flags[kernel]
    )
    try:
        torch.manual_seed(0)
        agent = build_agent(cfg, obs_dim, act_dim)
    finally:
        ppo.make_adam = original
    buffer = RolloutBuffer.empty(steps, 1, obs_dim, act_dim, device)
    buffer.obs.normal_()
    buffer.actions.normal_()
    buffer.log_probs.fill_(-3.0)
    adv, ret = torch.randn(steps, 1, device=device), torch.randn(steps, 1, device=device)
    agent.update(buffer, adv, ret)  # warm-up
    cuda = device.startswith("cuda")
    clock = time.perf_counter if cuda else time.process_time
    samples = []
    for _ in range(repeats):
        start = clock()
        agent.update(buffer, adv, ret)
        if cuda:
            torch.cuda.synchronize()
        samples.append(clock() - start)
    return float(np.median(samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}")
    for preset, obs_dim, act_dim, steps in CASES:
        t = {
            kernel: time_update(preset, obs_dim, act_dim, steps, kernel, args.repeats, args.device)
            for kernel in ("loop", "foreach", "fused")
        }
        cfg = build_config({"preset": preset})
        n_mb = -(-steps // cfg.minibatch_size)
        per_mb = {k: f"{v * 1e3 / n_mb:.1f}" for k, v in t.items()}
        print(
            f"{preset}: {n_mb} minibatches of {cfg.minibatch_size}, ms/minibatch: loop"
            f" {per_mb['loop']}, foreach {per_mb['foreach']}, fused {per_mb['fused']} -> vs loop:"
            f" foreach {t['foreach'] / t['loop']:.3f}x, fused {t['fused'] / t['loop']:.3f}x"
        )


if __name__ == "__main__":
    main()
