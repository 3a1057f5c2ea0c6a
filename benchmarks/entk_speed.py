"""Speed and memory of the exact structured eNTK on the paper-size HumanoidBench actor.

Actor: Top-K MoE, obs 51, actions 19, E = 10 experts, k = 2, 3×256 ReLU experts and gate.

Prints, for ``N`` states (default 256, a 4864×4864 kernel):

* the structured eNTK time and peak extra memory (float32 actor, the training dtype), full and
  trace_outputs conventions (both with the default ``verify=True``);
* the float32 error against the float64 kernel (max relative entry error, r_e difference);
* the eigensolve time of ``r_e(K)`` in float64 (the default) and float32, and the r_e error of the
  latter;
* the proxy ``r_e(A_last^exp)`` time, from a given forward pass and including the forward;
* brute force (``torch.func.jacrev`` over all mean-affecting parameters, then ``J Jᵀ``) against the
  structured kernel at small ``N``, in the same process: both times, the speed-up and agreement.

Every measurement runs in a fresh subprocess so that its peak memory is its own: on CPU ``VmHWM``
from ``/proc/self/status`` minus the resident size just before the measurement, on CUDA
``torch.cuda.max_memory_allocated`` minus the allocation before it. Each timing is one run after a
warm-up on two states (times on a shared machine are noisy; run twice when it matters).

    .venv/bin/python benchmarks/entk_speed.py            # N = 256, brute force at N = 8, 16, 32
    .venv/bin/python benchmarks/entk_speed.py --quick    # N = 64, brute force at N = 8
    python benchmarks/entk_speed.py --device cuda        # the same on a GPU
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
from torch.func import functional_call, jacrev

from sphere_rl.metrics import effective_rank, entk, sphere_proxy_rank
from sphere_rl.nn import TopKMoEActor

OBS_DIM, ACT_DIM, N_EXPERTS, TOP_K = 51, 19, 10, 2
MB = 2**20


# --------------------------------------------------------------------------------------------------
# Worker side: one measurement per process
# --------------------------------------------------------------------------------------------------


class Meter:
    """Wall time and peak extra memory of one call on ``device``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def _proc_mb(self, field: str) -> float:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def __call__(self, fn: Callable[[], object]) -> tuple[object, float, float]:
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated() / MB
        else:
            base = self._proc_mb("VmRSS")
        start = time.perf_counter()
        result = fn()
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated() / MB if cuda else self._proc_mb("VmHWM")
        return result, seconds, peak - base


def setup(n: int, dtype: torch.dtype, device: torch.device) -> tuple[TopKMoEActor, torch.Tensor]:
    torch.manual_seed(0)
    actor = TopKMoEActor(OBS_DIM, ACT_DIM, n_experts=N_EXPERTS, top_k=TOP_K).to(device, dtype)
    obs = torch.randn(n, OBS_DIM, dtype=dtype, device=device)
    entk(actor, obs[:2])  # one-time costs (autograd / vmap / BLAS initialisation) are not measured
    effective_rank(torch.eye(2, device=device))
    return actor, obs


def brute_force_entk(actor: torch.nn.Module, obs: torch.Tensor) -> torch.Tensor:
    """``J Jᵀ`` with ``J`` from ``jacrev`` over every parameter that affects the mean."""
    params = {k: v.detach() for k, v in actor.named_parameters() if k != "log_std"}
    jac = jacrev(lambda p: functional_call(actor, p, (obs,)).mean)(params)
    rows = obs.shape[0] * ACT_DIM
    kernel = obs.new_zeros(rows, rows)
    for j in jac.values():  # contract per parameter: J is never concatenated (half the memory)
        j = j.reshape(rows, -1)
        kernel.addmm_(j, j.T)
    return kernel


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual.double() - expected.double()).abs().max() / expected.abs().max())


def worker(task: str, n: int, device: torch.device) -> dict[str, float]:
    meter = Meter(device)
    if task in ("structured", "structured_trace"):
        actor, obs = setup(n, torch.float32, device)
        trace = task == "structured_trace"
        _, seconds, peak = meter(lambda: entk(actor, obs, trace_outputs=trace))
        return {"seconds": seconds, "peak_extra_mb": peak}
    if task == "precision":
        actor, obs = setup(n, torch.float64, device)
        k64, s64, _ = meter(lambda: entk(actor, obs))
        k32 = entk(actor.float(), obs.float())
        r64, eig64, _ = meter(lambda: effective_rank(k64))
        r32_eig, eig32, _ = meter(lambda: effective_rank(k64, eig_dtype=torch.float32))
        return {
            "float64_kernel_seconds": s64,
            "kernel_rel_error": relative_error(k32, k64),
            "r_e": r64,
            "r_e_error_float32_kernel": abs(effective_rank(k32) - r64),
            "r_e_error_float32_eigensolve": abs(r32_eig - r64),
            "eig_float64_seconds": eig64,
            "eig_float32_seconds": eig32,
        }
    if task == "proxy":
        actor, obs = setup(n, torch.float32, device)
        with torch.no_grad():
            output = actor(obs)
        given = [meter(lambda: sphere_proxy_rank(output))[1] for _ in range(20)]
        full = [meter(lambda: sphere_proxy_rank(actor, obs))[1] for _ in range(20)]
        return {
            "given_median_ms": 1e3 * statistics.median(given),
            "given_min_ms": 1e3 * min(given),
            "forward_median_ms": 1e3 * statistics.median(full),
            "forward_min_ms": 1e3 * min(full),
        }
    if task == "brute":
        actor, obs = setup(n, torch.float32, device)
        fast, fast_s, _ = meter(lambda: entk(actor, obs))
        slow, slow_s, slow_peak = meter(lambda: brute_force_entk(actor, obs))
        return {
            "brute_seconds": slow_s,
            "brute_peak_extra_mb": slow_peak,
            "structured_seconds": fast_s,
            "speedup": slow_s / fast_s,
            "rel_error": relative_error(fast, slow),
        }
    raise ValueError(task)


# --------------------------------------------------------------------------------------------------
# Driver side
# --------------------------------------------------------------------------------------------------


def run(task: str, n: int, device: str) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--worker", task, "--n", str(n), "--device", device]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"worker {task} (N={n}) failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(n: int, brute_sizes: list[int], device: str) -> None:
    size = n * ACT_DIM
    full = run("structured", n, device)
    trace = run("structured_trace", n, device)
    print(f"structured eNTK, N={n} ({size}x{size}), float32:")
    for name, r in (("full kernel", full), ("trace_outputs", trace)):
        print(f"  {name:14s} {r['seconds']:8.2f} s   peak extra {r['peak_extra_mb']:7.0f} MB")

    p = run("precision", n, device)
    print(f"\nfloat64 kernel {p['float64_kernel_seconds']:.2f} s, r_e(K) = {p['r_e']:.3f}")
    print(
        f"  float32 kernel: max rel. entry error {p['kernel_rel_error']:.2e}, "
        f"r_e error {p['r_e_error_float32_kernel']:.2e}"
    )
    print(
        f"  r_e eigensolve: float64 {p['eig_float64_seconds']:.2f} s, float32 "
        f"{p['eig_float32_seconds']:.2f} s (r_e error {p['r_e_error_float32_eigensolve']:.2e})"
    )

    q = run("proxy", n, device)
    print(
        f"\nproxy r_e(A_last^exp), N={n} (median / min of 20): "
        f"{q['given_median_ms']:.1f} / {q['given_min_ms']:.1f} ms from a forward pass, "
        f"{q['forward_median_ms']:.1f} / {q['forward_min_ms']:.1f} ms including the forward"
    )

    print("\nbrute force (jacrev + J J^T) vs structured, float32, same process:")
    for m in brute_sizes:
        b = run("brute", m, device)
        print(
            f"  N={m:4d}: brute {b['brute_seconds']:7.2f} s (peak extra "
            f"{b['brute_peak_extra_mb']:6.0f} MB), structured {b['structured_seconds']:6.3f} s, "
            f"speed-up {b['speedup']:6.1f}x, rel. error {b['rel_error']:.1e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 64 and brute force at N = 8")
    parser.add_argument("--n", type=int, default=None, help="states for the eNTK (default 256)")
    parser.add_argument("--brute-sizes", default=None, help="comma-separated N for brute force")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, torch.device(args.device))))
        return

    n = args.n or (64 if args.quick else 256)
    brute_sizes = args.brute_sizes or ("8" if args.quick else "8,16,32")
    where = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"Top-K MoE actor: obs {OBS_DIM}, actions {ACT_DIM}, E={N_EXPERTS}, k={TOP_K}, 3x256")
    print(f"torch {torch.__version__}, {where}, {torch.get_num_threads()} CPU threads\n")
    report(n, [int(s) for s in brute_sizes.split(",")], args.device)


if __name__ == "__main__":
    main()
