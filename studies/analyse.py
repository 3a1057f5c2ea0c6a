"""The mechanism study's analysis (issue #18), from run directories or from committed raw values.

    python studies/analyse.py select  RUNS --out docs/studies/mechanism-select
    python studies/analyse.py confirm RUNS --out docs/studies/mechanism-confirm
    python studies/analyse.py confirm --from-raw docs/studies/mechanism-confirm   # recompute

From RUNS it writes the raw values (``runs.csv``: one row per run with its provenance;
``diag.csv``: one row per run × diagnostic point × probe kind × metric; ``eval.csv``: one row per
run × task-end evaluation), then computes every number of ``tables.md`` and ``summary.json`` from
those raw files alone, so that anyone can recompute them (``--from-raw``) and a test
(``tests/test_results_doc.py``) ties ``docs/results.md`` to them.

The plan this implements (question, sequences, budget, seeds, the rule choosing ρ, the tests
that decide) is in ``docs/results.md``, "Mechanism study: plan", committed before the runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

from sphere_rl.analysis.differences import permutation_p, welch_difference
from sphere_rl.analysis.intervals import describe, seed_interval
from sphere_rl.analysis.mechanism import FIXED, PROXY, RANK, pearson, variant_label
from sphere_rl.analysis.provenance import segment_facts
from sphere_rl.analysis.runs import find_runs

REFERENCE = "topk_moe"
METRICS = {"rank_K": RANK, "rank_A": PROXY}
PROBES = {"run-wide": FIXED, "task": ""}
SYMBOL = {"rank_K": "r_e(K)", "rank_A": "r_e(A)"}
INTERVAL = "t"  # the default interval of sphere_rl.analysis.intervals (coverage-tested)


# ------------------------------------------------------------------------------- raw values
def collect(runs_dir: Path) -> dict[str, list[dict]]:
    """Raw rows of every finished run under ``runs_dir``: ``runs``, ``diag`` and ``eval``."""
    runs = [run for run in find_runs(runs_dir) if run.finished]
    rows: dict[str, list[dict]] = {"runs": [], "diag": [], "eval": []}
    for run in runs:
        name = run.name
        variant = variant_label(run.config)
        rows["runs"].append(
            {"run": name, "variant": variant, "seed": run.seed, "tasks": "+".join(run.tasks),
             **_provenance(run.path)}  # fmt: skip
        )
        for record in run.diags:
            for probe, prefix in PROBES.items():
                for metric, key in METRICS.items():
                    if record.get(prefix + key) is not None:
                        rows["diag"].append(
                            {"run": name, "variant": variant, "seed": run.seed,
                             "step": record["global_step"], "task_index": record["task_index"],
                             "probe": probe, "metric": metric,
                             "value": repr(float(record[prefix + key]))}  # fmt: skip
                        )
        for record in run.evals:
            if record["eval_kind"] == "task_end":
                rows["eval"].append(
                    {"run": name, "variant": variant, "seed": run.seed,
                     "train_task_index": record["train_task_index"],
                     "eval_task_index": record["eval_task_index"],
                     "eval_task": record["eval_task"], "success": repr(float(record["success"])),
                     "return": repr(float(record["return"]))}  # fmt: skip
                )
    return rows


def _provenance(run_dir: Path) -> dict:
    """The run's first training segment's provenance from run.json (empty if it has none)."""
    run = json.loads((run_dir / "run.json").read_text())
    segments = run.get("segments") or [{}]
    first = segments[0]
    git = first.get("git") or {}
    facts = segment_facts(first)
    return {
        "segments": len(run.get("segments") or []),
        "commit": git.get("commit", "unknown") if isinstance(git, dict) else str(git),
        "dirty": git.get("dirty", "unknown") if isinstance(git, dict) else "unknown",
        "config_hash": run.get("config_hash", ""),
        # The machine too: MKL's code path depends on the CPU, so another CPU can give other
        # digits from the same commit and configuration (docs/results.md).
        "cpu": facts["cpu"],
        "cpu_capability": facts["cpu_capability"],
    }


def write_raw(rows: dict[str, list[dict]], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, table in rows.items():
        if not table:
            raise SystemExit(f"no {name} rows: are there finished runs?")
        with open(out / f"{name}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)


def read_raw(out: Path) -> dict[str, list[dict]]:
    rows = {}
    for name in ("runs", "diag", "eval"):
        with open(out / f"{name}.csv", newline="") as f:
            rows[name] = list(csv.DictReader(f))
    return rows


# ------------------------------------------------------------------------------- per-run values
def series(rows: list[dict]) -> dict[tuple, dict[str, list[tuple[int, int, float]]]]:
    """``{(probe, metric): {run: [(step, task_index, value), ...] sorted by step}}``."""
    out: dict[tuple, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        out[r["probe"], r["metric"]][r["run"]].append(
            (int(r["step"]), int(r["task_index"]), float(r["value"]))
        )
    for by_run in out.values():
        for points in by_run.values():
            points.sort()
    return out


def run_values(points: list[tuple[int, int, float]]) -> dict[str, float]:
    """One run's first and final value, change, and the value at each task's end."""
    ends = {}
    for _, task, value in points:
        ends[task] = value  # the last point of each task
    values = {"first": points[0][2], "final": points[-1][2], "change": points[-1][2] - points[0][2]}
    values.update({f"end_{t + 1}": v for t, v in sorted(ends.items())})
    return values


def per_variant(raw: dict[str, list[dict]], probe: str, metric: str) -> dict[str, dict]:
    """``{variant: {quantity: np.ndarray over seeds (sorted by seed)}}``."""
    variant_of = {r["run"]: (r["variant"], int(r["seed"])) for r in raw["runs"]}
    by_run = series(raw["diag"])[probe, metric]
    grouped: dict[str, list[tuple[int, dict]]] = defaultdict(list)
    for run, points in by_run.items():
        variant, seed = variant_of[run]
        grouped[variant].append((seed, run_values(points)))
    out = {}
    for variant, seeded in sorted(grouped.items(), key=lambda kv: _variant_order(kv[0])):
        seeded.sort()
        keys = seeded[0][1].keys()
        out[variant] = {k: np.array([v[k] for _, v in seeded]) for k in keys}
    return out


def _variant_order(label: str) -> tuple:
    return (label != REFERENCE, label)


# ------------------------------------------------------------------------------- tests
def one_sample_t(values: np.ndarray) -> dict:
    """Mean of per-seed ``values`` with its t-interval and the two-sided p of "mean = 0"."""
    interval = seed_interval(values, INTERVAL)
    p = float(stats.ttest_1samp(values, 0.0).pvalue)
    return {"estimate": interval.mean, "low": interval.low, "high": interval.high,
            "n": interval.n, "p": p}  # fmt: skip


def welch_t(a: np.ndarray, b: np.ndarray) -> dict:
    """``mean(a) − mean(b)`` with Welch's interval and two-sided p."""
    d = welch_difference(a, b)
    return {"estimate": d.diff, "low": d.low, "high": d.high, "p": d.p, "n_a": d.n_a,
            "n_b": d.n_b}  # fmt: skip


# ------------------------------------------------------------------------------- formatting
def fmt_interval(values: np.ndarray, digits: int = 2) -> str:
    return seed_interval(values, INTERVAL).format(digits)


def fmt_p(p: float) -> str:
    return "—" if math.isnan(p) else (f"{p:.3f}" if p >= 0.001 else f"{p:.1e}")


def spectrum_table(raw, probe: str, metric: str) -> tuple[str, dict]:
    data = per_variant(raw, probe, metric)
    n_tasks = max(sum(k.startswith("end_") for k in q) for q in data.values())
    ends = [f"end_{t + 1}" for t in range(n_tasks)]
    cols = ["first", *ends, "final", "change"] if probe == "run-wide" else ends
    names = {"first": "first", "final": "final", "change": "final − first"}
    names.update({e: f"end of task {e[4:]}" for e in ends})
    lines = ["| variant | n | " + " | ".join(names[c] for c in cols) + " |",
             "|---|---|" + "---|" * len(cols)]  # fmt: skip
    summary = {}
    for variant, q in data.items():
        cells = [fmt_interval(q[c]) for c in cols]
        lines.append(f"| {variant} | {len(q[cols[0]])} | " + " | ".join(cells) + " |")
        summary[variant] = {
            c: {**_interval_dict(q[c]), "values": [float(v) for v in q[c]]} for c in cols
        }
    return "\n".join(lines) + "\n", summary


def _interval_dict(values: np.ndarray) -> dict:
    i = seed_interval(values, INTERVAL)
    return {"mean": i.mean, "low": i.low, "high": i.high, "n": i.n}


# ------------------------------------------------------------------------------- stages
def analyse_select(raw) -> tuple[str, dict]:
    """Stage 1: the spectrum per variant on sequence A and the ρ the plan's rule chooses."""
    table, summary = spectrum_table(raw, "run-wide", "rank_K")
    candidates = {v: s["final"]["mean"] for v, s in summary.items() if v != REFERENCE}
    chosen_label = max(candidates, key=candidates.get)
    rho = float(chosen_label.split("ρ=")[1])
    mode = chosen_label.split()[1]
    tables = [
        f"**r_e(K) on the run-wide probe, sequence A** (mean over seeds, {describe(INTERVAL)}"
        " over seeds; n = seeds)",
        "",
        table,
        f"**Chosen by the rule** (highest mean final r_e(K) among the SPHERE variants):"
        f" {chosen_label} (final {candidates[chosen_label]:.2f}; others: "
        + ", ".join(f"{v} {m:.2f}" for v, m in candidates.items() if v != chosen_label)
        + ").",
        "",
    ]
    payload = {"rank_K_run_wide": summary, "chosen": {"variant": chosen_label, "rho": rho,
                                                      "sphere_mode": mode}}  # fmt: skip
    return "\n".join(tables), payload


def analyse_confirm(raw) -> tuple[str, dict]:
    """Stage 2: the decision tests, the spectrum per probe kind, the proxy correlation within
    each probe kind, and success."""
    payload: dict = {}
    out = []
    ref = per_variant(raw, "run-wide", "rank_K")
    variants = [v for v in ref if v != REFERENCE]
    if len(variants) != 1:
        raise SystemExit(f"stage 2 needs {REFERENCE} and one SPHERE variant, got {list(ref)}")
    sphere = variants[0]
    # Decision tests (the plan's primary hypotheses).
    h1 = one_sample_t(ref[REFERENCE]["change"])
    h2 = welch_t(ref[sphere]["final"], ref[REFERENCE]["final"])
    h2_perm = permutation_p(ref[sphere]["final"], ref[REFERENCE]["final"])
    payload["decision"] = {
        "H1_collapse": {**h1, "variant": REFERENCE, "quantity": "final − first r_e(K), run-wide"},
        "H2_sphere_higher": {**h2, "permutation_p": h2_perm, "quantity":
                             f"final r_e(K), run-wide: {sphere} − {REFERENCE}"},  # fmt: skip
    }
    out += [
        "**Decision tests** (pre-registered; two-sided, α = 0.05)",
        "",
        "| hypothesis | estimate | 95% CI | n | test | p |",
        "|---|---|---|---|---|---|",
        f"| H1: {REFERENCE}'s r_e(K) (run-wide) changes from first to final | {h1['estimate']:.2f}"
        f" | [{h1['low']:.2f}, {h1['high']:.2f}] | {h1['n']} | one-sample t | {fmt_p(h1['p'])} |",
        f"| H2: final r_e(K) (run-wide), {sphere} − {REFERENCE} | {h2['estimate']:.2f}"
        f" | [{h2['low']:.2f}, {h2['high']:.2f}] | {h2['n_a']} + {h2['n_b']} | Welch t"
        f" (permutation p = {fmt_p(h2_perm)}) | {fmt_p(h2['p'])} |",
        "",
    ]
    # The spectrum per probe kind and metric, and SPHERE − Top-K MoE differences.
    diffs = ["| probe | metric | quantity | difference | 95% CI (Welch) | p |", "|---|---|---|---|---|---|"]
    for probe in PROBES:
        for metric in METRICS:
            table, summary = spectrum_table(raw, probe, metric)
            payload[f"{metric}_{probe}"] = summary
            what = ("on the run-wide probe" if probe == "run-wide"
                    else "on each task's own probe, at that task's end")  # fmt: skip
            out += [f"**{SYMBOL[metric]} {what}** (mean, {describe(INTERVAL)} over seeds)", "",
                    table]  # fmt: skip
            data = per_variant(raw, probe, metric)
            last = f"end_{max(int(k[4:]) for k in data[sphere] if k.startswith('end_'))}"
            for quantity in ("final", "change") if probe == "run-wide" else (last,):
                if quantity not in data[sphere]:
                    continue
                d = welch_t(data[sphere][quantity], data[REFERENCE][quantity])
                payload.setdefault("differences", []).append(
                    {"probe": probe, "metric": metric, "quantity": quantity, **d}
                )
                diffs.append(
                    f"| {probe} | {SYMBOL[metric]} | {quantity.replace('_', ' of task ')} |"
                    f" {d['estimate']:.2f} | [{d['low']:.2f}, {d['high']:.2f}] | {fmt_p(d['p'])} |"
                )
    out += [f"**{sphere} − {REFERENCE}** (Welch's t; n = {len(ref[sphere]['final'])} and"
            f" {len(ref[REFERENCE]['final'])} seeds)", "", "\n".join(diffs), ""]  # fmt: skip
    # Proxy correlation within each probe kind (pooling the kinds mixes two populations).
    corr_rows = ["| probe | variant | points | Pearson r(r_e(A), r_e(K)) |", "|---|---|---|---|"]
    payload["proxy_correlation"] = []
    for probe in (*PROBES, "both (pooled)"):
        for variant in [*ref, "all"]:
            proxy, rank = _pairs(raw["diag"], probe, variant)
            r = pearson(proxy, rank)
            payload["proxy_correlation"].append(
                {"probe": probe, "variant": variant, "points": len(proxy), "r": r}
            )
            corr_rows.append(f"| {probe} | {variant} | {len(proxy)} | {r:.3f} |")
    out += ["**Proxy against the eNTK**, within each probe kind", "", "\n".join(corr_rows), ""]
    # Success at each task's end on that task (5 episodes), and the average over tasks.
    out += [success_table(raw, payload)]
    return "\n".join(out), payload


def _pairs(diag: list[dict], probe: str, variant: str) -> tuple[list[float], list[float]]:
    values: dict[tuple, dict[str, float]] = defaultdict(dict)
    for r in diag:
        if (probe.startswith("both") or r["probe"] == probe) and variant in ("all", r["variant"]):
            values[r["run"], r["step"], r["probe"]][r["metric"]] = float(r["value"])
    pairs = [(v["rank_A"], v["rank_K"]) for v in values.values() if len(v) == 2]
    return [a for a, _ in pairs], [k for _, k in pairs]


def success_table(raw, payload: dict) -> str:
    own: dict[str, dict[int, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    tasks = {}
    for r in raw["eval"]:
        if r["train_task_index"] == r["eval_task_index"]:
            t = int(r["train_task_index"])
            own[r["variant"]][t].append((int(r["seed"]), float(r["success"])))
            tasks[t] = r["eval_task"]
    lines = ["| variant | n | " + " | ".join(tasks[t].removesuffix("-v3") for t in sorted(tasks))
             + " | average |", "|---|---|" + "---|" * (len(tasks) + 1)]  # fmt: skip
    payload["success"] = {}
    for variant in sorted(own, key=_variant_order):
        cols = [np.array([s for _, s in sorted(own[variant][t])]) for t in sorted(tasks)]
        average = np.mean(cols, axis=0)
        cells = [fmt_interval(c) for c in (*cols, average)]
        lines.append(f"| {variant} | {len(average)} | " + " | ".join(cells) + " |")
        payload["success"][variant] = {"average": [float(v) for v in average]}
    return ("**Success at the end of each task, on that task** (5 episodes; mean,"
            f" {describe(INTERVAL)} over seeds)\n\n" + "\n".join(lines) + "\n")  # fmt: skip


STAGES = {"select": analyse_select, "confirm": analyse_confirm}


def render(stage: str, out: Path) -> tuple[str, str]:
    """``tables.md`` and ``summary.json`` text of ``stage`` from the raw files in ``out``."""
    raw = read_raw(out)
    tables, payload = STAGES[stage](raw)
    runs = raw["runs"]
    commits = sorted({(r["commit"], r["dirty"]) for r in runs})
    footer = (f"\nRuns: {len(runs)}; code: "
              + ", ".join(f"{c}{' (dirty)' if d == 'True' else ''}" for c, d in commits)
              + ". Raw values: runs.csv, diag.csv and eval.csv beside this file.\n")  # fmt: skip
    return tables + footer, json.dumps(payload, indent=2, sort_keys=True, allow_nan=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("runs", nargs="?", type=Path, help="directory of the study's runs")
    parser.add_argument("--out", type=Path, help="where raw values and tables go")
    parser.add_argument("--from-raw", type=Path, help="recompute from this directory's raw files")
    args = parser.parse_args(argv)
    if args.from_raw is not None:
        out = args.from_raw
    elif args.runs is not None and args.out is not None:
        write_raw(collect(args.runs), args.out)
        out = args.out
    else:
        parser.error("give RUNS and --out, or --from-raw DIR")
    tables, summary = render(args.stage, out)
    (out / "stage.json").write_text(json.dumps({"stage": args.stage}) + "\n")
    (out / "tables.md").write_text(tables)
    (out / "summary.json").write_text(summary)
    if args.stage == "select":
        chosen = json.loads(summary)["chosen"]
        (out / "chosen.json").write_text(json.dumps(chosen, indent=2) + "\n")
    print(tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
