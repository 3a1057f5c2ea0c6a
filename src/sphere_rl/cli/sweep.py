"""``sphere sweep``: methods × seeds × protocols × benchmarks as Ray tasks, resumable."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sphere_rl.cli.common import (
    ASSIGNMENTS_HELP,
    check_out_dir,
    check_tracker_or_fail,
    err_console,
    fail,
    load_plugins_or_fail,
    parse_assignments,
    read_config_file,
)
from sphere_rl.cli.flags import config_flags
from sphere_rl.cli.output import make_console, name_table
from sphere_rl.config import CHOICES, PRESETS, ConfigError, ExperimentConfig
from sphere_rl.envs.registry import BENCHMARKS
from sphere_rl.methods import METHODS

if TYPE_CHECKING:
    from sphere_rl.sweep import PlannedRun

console = make_console()
Opt = typer.Option
SUMMARY_FILE = "sweep_summary.json"


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep)


def sweep(
    ctx: typer.Context,
    methods: Annotated[
        str,
        Opt(
            help="Comma-separated methods, e.g. ppo,topk_moe,sphere. Methods: "
            f"{', '.join(METHODS)} (and those --plugin modules register)."
        ),
    ],
    assignments: Annotated[
        list[str] | None, typer.Argument(metavar="[KEY=VALUE]...", help=ASSIGNMENTS_HELP)
    ] = None,
    seeds: Annotated[str, Opt(help="Seeds: a range 0-4, a list 0,2,7 or both.")] = "0",
    protocols: Annotated[
        str, Opt(help=f"Comma-separated protocols: {', '.join(CHOICES['protocol'])}.")
    ] = "crl,rl",
    benchmark: Annotated[
        str | None,
        Opt(
            help=f"Comma-separated task sequences: {', '.join(BENCHMARKS)}.",
            show_default="the --config file's, else cw10",
        ),
    ] = None,
    tasks: Annotated[
        str | None, Opt(help="Comma-separated task list instead of a benchmark.")
    ] = None,
    preset: Annotated[
        str | None,
        Opt(help=f"Hyper-parameter preset: {', '.join(PRESETS)}.", show_default="the benchmark's"),
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
    cpus_per_run: Annotated[
        float,
        Opt(help="CPUs Ray reserves per run (torch threads: the torch_threads key, default 1)."),
    ] = 1.0,
    gpus_per_run: Annotated[float, Opt(help="GPUs per run (fractions share a GPU).")] = 0.0,
    retry_failed: Annotated[
        bool, Opt("--retry-failed", help="Resume runs that failed before (e.g. a NaN loss).")
    ] = False,
    plugin: Annotated[
        list[str] | None,
        Opt(
            "--plugin",
            help="Import this module (a name or a .py file) here and in every worker, so that the"
            " methods and plug-ins it registers can be used. Repeat for several.",
        ),
    ] = None,
    track: Annotated[
        str | None,
        Opt(
            help="Also log every run to W&B or MLflow (as for sphere train; each worker needs"
            " the package).",
            metavar="wandb|mlflow",
        ),
    ] = None,
    dry_run: Annotated[bool, Opt("--dry-run", help="Print the plan; train nothing.")] = False,
) -> None:
    """Train every combination of methods, seeds, protocols and benchmarks as Ray tasks.

    Re-running the same command skips finished runs and resumes interrupted ones from their
    checkpoints. A failing run never stops the others; failures are listed at the end (exit 1).
    """
    from sphere_rl.plugins import plugin_locations
    from sphere_rl.sweep.ray_runner import RayOptions

    # Workers import the same modules from where this process found them.
    located = tuple(plugin_locations(load_plugins_or_fail(plugin)))
    base = _base_overrides(config, ctx.params, assignments)
    if track is not None:
        check_tracker_or_fail(track)
    _check_resources(address, num_cpus, cpus_per_run, gpus_per_run)
    variations = _parse_variations(vary)
    configs = _expand(methods, seeds, protocols, benchmark, base, variations)
    plans = _plan(configs, out, retry_failed, list(variations))
    _print_intent(plans, out, address, num_cpus, cpus_per_run, gpus_per_run)
    max_concurrent = None
    if address is None:  # a cluster schedules by its own nodes' resources
        max_concurrent = _size_by_memory(plans, num_cpus or os.cpu_count() or 1, cpus_per_run)
    if dry_run:
        _print_plan(plans)
        return
    options = RayOptions(address, num_cpus, cpus_per_run, gpus_per_run, plugins=located,
                         max_concurrent=max_concurrent, track=track)  # fmt: skip
    _execute(plans, out, options)


def _base_overrides(
    config: Path | None, params: dict[str, Any], assignments: list[str] | None
) -> dict[str, Any]:
    """The overrides every run of the grid shares, as for train: defaults ← preset ← ``--config``
    ← flags ← KEY=VALUE (``params``: the command's; --benchmark is an axis, not one of them)."""
    base: dict[str, Any] = read_config_file(config) if config is not None else {}
    if params["benchmark"] is not None and params["tasks"] is not None:
        fail("give --benchmark or --tasks, not both (--tasks replaces the sequence)")
    base.update(config_flags(sweep, params, exclude=("benchmark",)))
    assigned = parse_assignments(assignments)
    if (params["tasks"] is not None or "tasks" in assigned) and params["benchmark"] is None:
        base["benchmark"] = None
    base.update(assigned)
    return base


def _check_resources(
    address: str | None, num_cpus: int | None, cpus_per_run: float, gpus_per_run: float
) -> None:
    """Exit 2 on resource flags that cannot work together."""
    if cpus_per_run <= 0 or gpus_per_run < 0:
        fail("--cpus-per-run must be > 0 and --gpus-per-run >= 0")
    if address is not None and num_cpus is not None:
        fail("--num-cpus sizes a local Ray instance; a cluster given by --address has its own")


def _parse_variations(vary: list[str] | None) -> dict[str, list[Any]]:
    """``--vary KEY=V1,V2`` flags as ``{key: values}``; exits 2 on a malformed one."""
    from sphere_rl.sweep import parse_variation

    try:
        return dict(parse_variation(text) for text in vary or [])
    except (ConfigError, ValueError) as err:
        fail(str(err))


def _expand(
    methods: str,
    seeds: str,
    protocols: str,
    benchmark: str | None,
    base: dict[str, Any],
    variations: dict[str, list[Any]],
) -> list[ExperimentConfig]:
    """One validated configuration per grid point; exits 2 listing every invalid one (an unknown
    method or plug-in fails here, not in the workers)."""
    from sphere_rl.sweep import SweepGrid, expand_grid, parse_names, parse_seeds

    try:
        grid = SweepGrid(
            methods=parse_names(methods),
            seeds=parse_seeds(seeds),
            protocols=parse_names(protocols),
            benchmarks=parse_names(benchmark) if benchmark else [None],  # None: keep base's
            base=base,
            variations=variations,
        )
        return expand_grid(grid)
    except (ConfigError, ValueError) as err:
        fail(str(err))


def _plan(
    configs: list[ExperimentConfig], out: Path, retry_failed: bool, keys: list[str]
) -> list[PlannedRun]:
    """What happens to each run under ``out`` (new, resume, skip); exits 2 on a refusal."""
    from sphere_rl.sweep import plan_runs

    check_out_dir(out)  # before planning reads what is there
    try:
        return plan_runs(configs, out, retry_failed, keys)
    except (ConfigError, ValueError) as err:
        fail(str(err))


def _print_intent(
    plans: list[PlannedRun],
    out: Path,
    address: str | None,
    num_cpus: int | None,
    cpus_per_run: float,
    gpus_per_run: float,
) -> None:
    """One line: how many runs, what happens to them and where they go."""
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


def _size_by_memory(plans, cpus: int, cpus_per_run: float) -> int:
    """Print and return how many runs go at once on this machine (CPUs and free memory)."""
    from sphere_rl.envs.registry import resolve_tasks, task_spec
    from sphere_rl.sweep.memory import available_memory_gib, run_memory_gib, size_concurrency

    def families(cfg) -> set[str]:
        tasks = resolve_tasks(cfg.benchmark if cfg.tasks is None else None, cfg.tasks)
        return {task_spec(task).family for task in tasks}

    entk_samples = max((p.cfg.diag_samples for p in plans if p.cfg.diag_entk), default=0)
    gib_per_run = run_memory_gib(set().union(*(families(p.cfg) for p in plans)), entk_samples)
    sizing = size_concurrency(cpus, cpus_per_run, available_memory_gib(), gib_per_run)
    console.print(sizing.message)
    return sizing.runs


def _execute(plans, out: Path, options) -> None:
    from sphere_rl.continual.rundir import atomic_write_bytes
    from sphere_rl.sweep.progress import GridProgress
    from sphere_rl.sweep.ray_runner import outcomes_to_json, run_sweep

    grid = GridProgress([p for p in plans if p.submit])
    display = _GridDisplay(grid)

    def on_done(outcome) -> None:
        grid.mark_done(outcome.name, outcome.ok)
        mark = "[green]✓[/green]" if outcome.ok else "[red]✗[/red]"
        detail = outcome.error or f"{outcome.global_step:,} steps"
        console.print(f"  {mark} {outcome.name}: {outcome.result} in {outcome.seconds:.0f}s"
                      f" ({detail})", highlight=False, soft_wrap=True)  # fmt: skip
        display.refresh()

    try:
        with display:
            outcomes = run_sweep(plans, options, on_done=on_done, on_tick=display.tick)
    except KeyboardInterrupt:
        fail("interrupted; run the same command again to resume", code=130)
    except ConnectionError as err:
        fail(f"cannot reach Ray at {options.address}: {err}. A cluster with token authentication needs"
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


class _GridDisplay:
    """Live progress of the grid: one status line kept at the bottom of a terminal, or a plain
    line every SPHERE_PROGRESS_INTERVAL seconds (default 60) in a log."""

    def __init__(self, grid) -> None:
        from sphere_rl.continual.progress import DEFAULT_INTERVAL

        self.grid = grid
        self.interval = float(os.environ.get("SPHERE_PROGRESS_INTERVAL", DEFAULT_INTERVAL))
        self._live = None
        self._last = time.monotonic()

    def __enter__(self) -> _GridDisplay:
        if console.is_terminal and self.grid.plans:
            from rich.live import Live
            from rich.text import Text

            self._text = Text(self.grid.line())
            self._live = Live(self._text, console=console, refresh_per_second=2, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
        elif self.grid.plans and exc[0] is None:
            self._print_line()  # a log ends with the grid's totals, however fast the runs were

    def refresh(self) -> None:
        if self._live is not None:
            self._text.plain = self.grid.line()
        elif time.monotonic() - self._last >= self.interval:
            self._print_line()

    def tick(self) -> None:
        self.refresh()

    def _print_line(self) -> None:
        self._last = time.monotonic()
        console.print(self.grid.line(), highlight=False, soft_wrap=True)


def _print_plan(plans) -> None:
    table = name_table("plan", "run", ["action", "note"])
    for p in plans:
        table.add_row(p.name, p.action, p.note)
    console.print(table)


def _print_summary(outcomes) -> None:
    # Method, protocol and seed are part of each run's name (and of sweep_summary.json).
    table = name_table("sweep summary", "run", ["action", "result", "env steps", "time"])
    for column in table.columns[3:]:
        column.justify = "right"
    for o in outcomes:
        style = "green" if o.ok and o.result == "finished" else ("red" if not o.ok else "")
        table.add_row(o.name, o.action, f"[{style}]{o.result}[/{style}]" if style else o.result,
                      f"{o.global_step:,}", f"{o.seconds:.0f}s")  # fmt: skip
    console.print(table)
    counts = Counter(o.result for o in outcomes)
    console.print("results: " + ", ".join(f"{n} {r}" for r, n in sorted(counts.items())))
