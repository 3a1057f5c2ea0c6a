"""CPU cost of training, one core: env steps per CPU-second for each main method, CW10 and HB.

    python benchmarks/cpu_cost.py                 # the 8 measurements of docs/reproduce.md
    python benchmarks/cpu_cost.py --methods topk_moe --benchmarks cw10

Each measurement is a fresh ``sphere train`` process: one PPO iteration of the cw10 preset on
``hammer-v3`` (16,384 env steps) or two of the hb5 preset on ``h1-run`` (4,096 env steps), with the
paper's networks, one torch thread and ``diag_entk`` off. Its cost is the process's CPU time (user
+ system) minus that of the same command with ``--dry-run`` (imports and configuration), measured
in this run: the reference. ``learner share`` is the run's own ``learner_fraction`` (GAE and the
update over the iteration's wall time). The simulator rate is the rollout's share of the CPU time.

With all eight measurements it also prints docs/reproduce.md's estimates: core-hours per run =
training steps / the method's rate + evaluation steps / the simulator rate (+ 1 core-hour of eNTK
diagnostics per HB run), and per result of that page, with the costing rules of :data:`COSTED_AS`.

Run it alone on the machine: other load inflates CPU time too (shared caches).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import fmean

from sphere_rl.provenance import collect_provenance

MEASURES = {  # benchmark: (task, env steps, preset)
    "cw10": ("hammer-v3", 16_384, "cw10"),
    "hb": ("h1-run", 4_096, "hb5"),
}
SPHERE = [str(Path(sys.executable).with_name("sphere"))]

# docs/reproduce.md's estimates: (training, evaluation CRL, evaluation RL) env steps per run, and
# core-hours of diagnostics per run.
RUN_STEPS = {"cw10": (10_000_000, 3_300_000, 600_000), "hb": (50_000_000, 15_000_000, 5_000_000)}
DIAG_HOURS = {"cw10": 0.0, "hb": 1.0}
# Methods costed as a measured one (their extra work is small next to the update).
COSTED_AS = {"ln": "ppo", "cchain": "ppo", "cbp": "ppo", "pw": "ppo", "dense_moe": "topk_moe",
             "ds_moe": "topk_moe", "ablation": "sphere"}  # fmt: skip
MAIN = ["ppo", "ppo10x", "topk_moe", "ln", "sphere", "cchain", "cbp", "pw"]
# docs/reproduce.md's results: (benchmark, method, protocol, seeds) of the new runs of each.
RESULTS = {
    "1. CW10 main figure": [("cw10", m, p, 5) for m in MAIN for p in ("crl", "rl")],
    "2. HB main figure": [("hb", m, p, 5) for m in MAIN for p in ("crl", "rl")],
    "3. SPHERE ablation (new runs)": [("hb", "ablation", "crl", 15)],
    "4. r_e(K) figure (new runs)": [("hb", m, "crl", 5) for m in ("dense_moe", "ds_moe")],
    "5. architecture comparison (new runs)": [
        *[("cw10", m, p, 5) for m in ("dense_moe", "ds_moe") for p in ("crl", "rl")],
        *[("hb", m, "rl", 5) for m in ("dense_moe", "ds_moe")],
    ],
}


def _cpu_seconds(command: list[str]) -> float:
    """CPU time (user + system) of ``command`` run to completion in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(benchmark: str, method: str, out: Path) -> dict[str, float]:
    task, steps, preset = MEASURES[benchmark]
    config = out / "measure.json"
    config.write_text(json.dumps({"diag_entk": False}))
    run_out = out / f"{benchmark}-{method}"
    command = [
        *SPHERE, "train", "--tasks", task, "--preset", preset, "--method", method,
        "--steps-per-task", str(steps), "--eval-episodes", "1", "--config", str(config),
        "--out", str(run_out), "--quiet",
    ]  # fmt: skip
    reference = _cpu_seconds([*command, "--dry-run"])
    total = _cpu_seconds(command)
    records = [json.loads(line) for line in next(run_out.rglob("metrics.jsonl")).open()]
    shares = [r["learner_fraction"] for r in records if "learner_fraction" in r]
    cpu = total - reference
    rollout_share = 1.0 - sum(shares) / len(shares)
    return {
        "steps_per_cpu_s": steps / cpu,
        "learner_min": min(shares),
        "learner_max": max(shares),
        "sim_steps_per_cpu_s": steps / (cpu * rollout_share),
        "cpu_s": cpu,
        "reference_cpu_s": reference,
    }


def core_hours(results: list[dict], benchmark: str, method: str, protocol: str) -> float:
    """Estimated core-hours of one run (see the module docstring)."""
    by_key = {(r["benchmark"], r["method"]): r for r in results}
    measured = by_key[benchmark, COSTED_AS.get(method, method)]
    sim_rate = fmean(r["sim_steps_per_cpu_s"] for r in results if r["benchmark"] == benchmark)
    train, eval_crl, eval_rl = RUN_STEPS[benchmark]
    evaluation = eval_crl if protocol == "crl" else eval_rl
    seconds = train / measured["steps_per_cpu_s"] + evaluation / sim_rate
    return seconds / 3600 + DIAG_HOURS[benchmark]


def print_estimates(results: list[dict]) -> None:
    print("\n| benchmark | method | core-hours per CRL run | per RL run |\n|---|---|---|---|")
    for benchmark in RUN_STEPS:
        for method in ("ppo", "ppo10x", "sphere", "topk_moe"):
            crl, rl = (core_hours(results, benchmark, method, p) for p in ("crl", "rl"))
            print(f"| {benchmark.upper()} | `{method}` | {crl:.0f} | {rl:.0f} |")
    print("\n| result | new runs | training env steps | core-hours (CPU only) |\n|---|---|---|---|")
    totals = [0, 0.0, 0.0]
    for name, groups in RESULTS.items():
        runs = sum(seeds for *_, seeds in groups)
        steps = sum(RUN_STEPS[b][0] * seeds for b, _, _, seeds in groups)
        hours = sum(core_hours(results, b, m, p) * seeds for b, m, p, seeds in groups)
        totals = [totals[0] + runs, totals[1] + steps, totals[2] + hours]
        print(f"| {name} | {runs} | {steps / 1e9:.2f}B | {hours:,.0f} |")
    print(f"| **all** | **{totals[0]}** | **{totals[1] / 1e9:.2f}B** | **{totals[2]:,.0f}** |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmarks", default="cw10,hb")
    parser.add_argument("--methods", default="ppo,ppo10x,topk_moe,sphere")
    parser.add_argument("--json", type=Path, help="also write the results and provenance here")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    results = []
    print(
        "| benchmark | method | env steps per CPU-second | learner share | simulator steps/CPU-s |"
    )
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for benchmark in args.benchmarks.split(","):
            for method in args.methods.split(","):
                r = measure(benchmark, method, Path(tmp))
                results.append({"benchmark": benchmark, "method": method, **r})
                share = f"{r['learner_min']:.0%}–{r['learner_max']:.0%}"
                if round(r["learner_min"], 2) == round(r["learner_max"], 2):
                    share = f"{r['learner_min']:.0%}"
                print(
                    f"| {benchmark.upper()} | `{method}` | {r['steps_per_cpu_s']:.0f} | {share}"
                    f" | {r['sim_steps_per_cpu_s']:.0f} |  (CPU {r['cpu_s']:.1f} s, dry-run"
                    f" reference {r['reference_cpu_s']:.1f} s)",
                    flush=True,
                )
    if {(r["benchmark"], r["method"]) for r in results} >= {
        (b, m) for b in MEASURES for m in ("ppo", "ppo10x", "topk_moe", "sphere")
    }:
        print_estimates(results)
    if args.json:
        record = {"results": results, "provenance": collect_provenance(sys.argv)}
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
