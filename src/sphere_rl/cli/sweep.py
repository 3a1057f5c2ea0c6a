"""``sphere sweep``: methods × seeds × protocols × benchmarks as Ray tasks, resumable."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sphere_rl.cli.common import check_out_dir, err_console, fail, read_config_file

console = Console()
Opt = typer.Option
SUMMARY_FILE = "sweep_summary.json"


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep)


def sweep(
    methods: Annotated[str, Opt(help="Comma-separated methods, e.g. ppo,topk_moe,sphere.")],
    seeds: Annotated[str, Opt(help="Seeds: a range 0-4, a list 0,2,7 or both.")] = "0",
    protocols: Annotated[str, Opt(help="Comma-separated protocols: crl, rl.")] = "crl,rl",
    benchmark: Annotated[
        str | None, Opt(help="Comma-separated task sequences (cw10, cw20, hb5).")
    ] = None,
    tasks: Annotated[
        str | None, Opt(help="Comma-separated task list instead of a benchmark.")
    ] = None,
    preset: Annotated[
        str | None, Opt(help="cw10, hb5 or quick (default: the benchmark's).")
    ] = None,
    steps_per_task: Annotated[int | None, Opt(help="Env steps per task.")] = None,
    config: Annotated[
        Path | None, Opt(help="JSON file with more configuration keys (as for sphere train).")
    ] = None,
    vary: Annotated[
        list[str] | None,
        Opt(
            help="Another grid axis, KEY=V1,V2 (e.g. rho=1e-3,1e-2); repeatable. Each"
            " combination's runs go into OUT/KEY=V,.../."
        ),
    ] = None,
    out: Annotated[Path, Opt(help="Parent directory of the run directories.")] = Path("runs"),
    address: Annotated[
        str | None, Opt(help="Join this Ray cluster (ray://HOST:10001, HOST:6379, auto).")
    ] = None,
    num_cpus: Annotated[
        int | None, Opt(help="CPUs of the local Ray instance (default: all cores).")
    ] = None,
    cpus_per_run: Annotated[float, Opt(help="CPUs per run; torch uses as many threads.")] = 1.0,
    gpus_per_run: Annotated[float, Opt(help="GPUs per run (fractions share a GPU).")] = 0.0,
    retry_failed: Annotated[
        bool, Opt("--retry-failed", help="Resume runs that failed before (e.g. a NaN loss).")
    ] = False,
    dry_run: Annotated[bool, Opt("--dry-run", help="Print the plan; train nothing.")] = False,
) -> None:
    """Train every combination of methods, seeds, protocols and benchmarks as Ray tasks.

    Re-running the same command skips finished runs and resumes interrupted ones from their
    checkpoints. A failing run never stops the others; failures are listed at the end (exit 1).
    """
    from sphere_rl.config import ConfigError
    from sphere_rl.sweep import (
        SweepGrid,
        expand_grid,
        parse_names,
        parse_seeds,
        parse_variation,
        plan_runs,
    )

    base: dict[str, Any] = read_config_file(config) if config is not None else {}
    if benchmark is not None and tasks is not None:
        fail("give --benchmark or --tasks, not both (--tasks replaces the sequence)")
    flags = {"preset": preset, "steps_per_task": steps_per_task, "tasks": tasks}
    base.update({k: v for k, v in flags.items() if v is not None})
    if tasks is not None and benchmark is None:
        base["benchmark"] = None
    if cpus_per_run <= 0 or gpus_per_run < 0:
        fail("--cpus-per-run must be > 0 and --gpus-per-run >= 0")
    if address is not None and num_cpus is not None:
        fail("--num-cpus sizes a local Ray instance; a cluster given by --address has its own")
    try:
        variations = dict(parse_variation(text) for text in vary or [])
        grid = SweepGrid(
            methods=parse_names(methods),
            seeds=parse_seeds(seeds),
            protocols=parse_names(protocols),
            benchmarks=parse_names(benchmark) if benchmark else [None],  # None: keep base's
            base=base,
            variations=variations,
        )
        plans = plan_runs(expand_grid(grid), out, retry_failed, list(variations))
    except ConfigError as err:
        fail(str(err))
    check_out_dir(out)
    if gpus_per_run > 0 and all(p.cfg.device == "cpu" for p in plans):
        console.print("[yellow]warning:[/yellow] GPUs are reserved but device is cpu; set"
                      ' "device": "cuda" in --config to use them.')  # fmt: skip
    counts = Counter(p.action for p in plans)
    where = f"Ray cluster {address}" if address else f"local Ray ({num_cpus or 'all'} CPUs)"
    console.print(
        f"sweep: {len(plans)} runs in {out} ("
        + ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
        + f"); {where}, {cpus_per_run:g} CPU / {gpus_per_run:g} GPU per run"
    )
    if dry_run:
        _print_plan(plans)
        return
    _execute(plans, out, address, num_cpus, cpus_per_run, gpus_per_run)


def _execute(plans, out: Path, address, num_cpus, cpus_per_run, gpus_per_run) -> None:
    from sphere_rl.continual.rundir import atomic_write_bytes
    from sphere_rl.sweep.ray_runner import RayOptions, outcomes_to_json, run_sweep

    def on_done(outcome) -> None:
        mark = "[green]✓[/green]" if outcome.ok else "[red]✗[/red]"
        detail = outcome.error or f"{outcome.global_step:,} steps"
        console.print(f"  {mark} {outcome.name}: {outcome.result} in {outcome.seconds:.0f}s"
                      f" ({detail})", highlight=False)  # fmt: skip

    options = RayOptions(address, num_cpus, cpus_per_run, gpus_per_run)
    try:
        outcomes = run_sweep(plans, options, on_done=on_done)
    except KeyboardInterrupt:
        fail("interrupted; run the same command again to resume", code=130)
    except ConnectionError as err:
        fail(f"cannot reach Ray at {address}: {err}. A cluster with token authentication needs"
             " RAY_AUTH_MODE=token (and its token) in this shell too; see docs/sweeps.md.")  # fmt: skip
    summary = json.dumps(outcomes_to_json(outcomes), indent=2) + "\n"
    atomic_write_bytes(out / SUMMARY_FILE, summary.encode())
    _print_summary(outcomes)
    failed = [o for o in outcomes if not o.ok]
    for o in failed:
        err_console.print(
            f"[bold red]{o.name}[/bold red] ({o.run_dir}): {o.error}", highlight=False
        )
        if o.traceback:
            err_console.print("    " + "\n    ".join(o.traceback.strip().splitlines()[-6:]),
                              highlight=False, markup=False)  # fmt: skip
    if failed:
        raise typer.Exit(1)


def _print_plan(plans) -> None:
    table = Table(title="plan")
    for column in ("run", "action", "note"):
        table.add_column(column, overflow="fold")
    for p in plans:
        table.add_row(p.name, p.action, p.note)
    console.print(table)


def _print_summary(outcomes) -> None:
    table = Table(title="sweep summary")
    for column in ("run", "method", "protocol", "seed", "action", "result", "env steps", "time"):
        right = column in ("seed", "env steps", "time")
        table.add_column(column, justify="right" if right else "left", overflow="fold")
    for o in outcomes:
        style = "green" if o.ok and o.result == "finished" else ("red" if not o.ok else "")
        table.add_row(o.name, o.method, o.protocol, str(o.seed), o.action,
                      f"[{style}]{o.result}[/{style}]" if style else o.result,
                      f"{o.global_step:,}", f"{o.seconds:.0f}s")  # fmt: skip
    console.print(table)
    counts = Counter(o.result for o in outcomes)
    console.print("results: " + ", ".join(f"{n} {r}" for r, n in sorted(counts.items())))
