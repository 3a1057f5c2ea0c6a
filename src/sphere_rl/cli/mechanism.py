"""``sphere mechanism``: the mechanism study's numbers from a directory of runs.

Groups runs by variant (method, and SPHERE's mode and ρ), summarises r_e(K) and r_e(A) on the
run-wide probe (``diag_fixed_probe``) with bootstrap CIs over seeds, correlates the proxy with the
eNTK rank, and writes ``mechanism.md``, ``mechanism.json`` and the figures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sphere_rl.cli.common import err_console, fail, print_provenance


def register(app: typer.Typer) -> None:
    app.command("mechanism")(mechanism)


def mechanism(
    runs_dir: Annotated[Path, typer.Argument(help="Directory searched (recursively) for runs.")],
    out: Annotated[Path, typer.Option(help="Where the tables and figures go.")] = Path(
        "report/mechanism"
    ),
    reps: Annotated[int, typer.Option(help="Bootstrap resamples per interval.")] = 2_000,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Refuse (exit 2) runs that differ in provenance, have unknown provenance, were"
            " trained from an uncommitted tree or with torch_threads > 1 (as sphere report).",
        ),
    ] = False,
) -> None:
    """Spectral collapse per variant and the proxy/eNTK correlation (the mechanism study)."""
    from sphere_rl.analysis import mechanism as mech
    from sphere_rl.analysis.provenance import summarize_provenance
    from sphere_rl.analysis.runs import find_runs

    if not runs_dir.is_dir():
        fail(f"{runs_dir} is not a directory of runs")
    unreadable = []  # as in sphere report: a damaged run is listed, the others are analysed
    runs = [run for run in find_runs(runs_dir, unreadable) if run.diags]
    for err in unreadable:
        typer.echo(f"unreadable run left out: {err}", err=True)
    if not runs:
        fail(f"no run under {runs_dir} has diagnostics yet")
    # Changes over a sequence are only comparable on one probe batch for the whole run: each
    # task's own probe measures every task on other states.
    has_probe = {id(run): any(mech.FIXED + mech.RANK in d for d in run.diags) for run in runs}
    probed = [run for run in runs if has_probe[id(run)]]
    if not probed:
        fail(f"no run under {runs_dir} has the run-wide probe (they were trained with"
             " diag_fixed_probe false), so r_e(K) changes across tasks cannot be compared; train"
             ' with --config holding {"diag_fixed_probe": true}')  # fmt: skip
    if len(probed) < len(runs):
        left_out = ", ".join(run.name for run in runs if not has_probe[id(run)])
        typer.echo(f"runs without the run-wide probe left out: {left_out}", err=True)
    runs = probed
    provenance = summarize_provenance(runs)
    if strict and (problem := provenance.strict_problem()):
        fail(problem)
    print_provenance(err_console, provenance)  # stdout carries the tables
    out.mkdir(parents=True, exist_ok=True)
    sections, payload = [], {}
    for key, what in ((mech.RANK, "r_e(K)"), (mech.PROXY, "r_e(A)")):
        summaries = mech.spectrum_summary(runs, mech.FIXED + key, reps=reps)
        if summaries:
            sections.append(mech.spectrum_markdown(summaries, f"{what} on the run-wide probe"))
            payload[mech.FIXED + key] = [_jsonable(s) for s in summaries]
    corr = mech.proxy_correlation(runs)
    payload["proxy_correlation"] = {"pearson_r": corr.r, "points": corr.n}
    sections.append(f"Pearson r(r_e(A), r_e(K)) = {corr.r:.3f} over {corr.n} diagnostic points.\n")
    (out / "mechanism.md").write_text("\n".join(sections))
    (out / "mechanism.json").write_text(json.dumps(payload, indent=2))
    figures = [mech.plot_spectrum(runs, out / "spectrum")]
    figures.append(mech.plot_proxy_scatter(corr, out / "proxy_vs_entk"))
    typer.echo("\n".join(sections))
    typer.echo(f"written: {out / 'mechanism.md'}, {out / 'mechanism.json'}, figures"
               f" {', '.join(str(f) for f in figures)} (and .svg)")  # fmt: skip


def _jsonable(summary) -> dict:
    def interval(i) -> dict:
        return {"mean": i.mean, "low": i.low, "high": i.high, "seeds": i.n}

    return {
        "variant": summary.label,
        "seeds": summary.seeds,
        "initial": interval(summary.initial),
        "final": interval(summary.final),
        "minimum": interval(summary.minimum),
        "change": interval(summary.change),
        "task_end": [interval(i) for i in summary.task_end],
    }
