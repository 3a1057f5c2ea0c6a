"""``sphere train`` and ``sphere eval``."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sphere_rl.algo.ppo import NonFiniteLossError
from sphere_rl.cli.common import (
    ASSIGNMENTS_HELP,
    check_out_dir,
    check_tracker_or_fail,
    err_console,
    fail,
    load_plugins_or_fail,
    load_run_plugins_or_fail,
    parse_assignments,
    read_config_file,
)
from sphere_rl.cli.flags import config_flags, plain_default, preset_default
from sphere_rl.cli.output import make_console, name_table, print_json
from sphere_rl.config import (
    CHOICES,
    PRESETS,
    ConfigError,
    ExperimentConfig,
    build_config,
    saved_config,
)
from sphere_rl.continual.rundir import RunBusyError, RunFileError, read_json, run_lock
from sphere_rl.envs.registry import BENCHMARKS
from sphere_rl.methods import ARCHS, COMPONENTS, METHODS, name_problems

if TYPE_CHECKING:
    from sphere_rl.continual.runner import OpenDecision

console = make_console()


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("eval")(evaluate_run)


Opt = typer.Option


def _names(names) -> str:
    return ", ".join(names)


_DEFAULTS = ExperimentConfig()
_PLUGINS = sorted(COMPONENTS)


# Each configuration flag is written once, here: a parameter named after its key (the naming rule
# of sphere_rl.cli.flags) with its help and its shown default; the overrides are derived from these
# parameters. Help strings come from the registries, so a new method, plug-in or backend shows up by
# itself; a flag that a preset sets shows each preset's value as its default.
def train(
    ctx: typer.Context,
    assignments: Annotated[
        list[str] | None, typer.Argument(metavar="[KEY=VALUE]...", help=ASSIGNMENTS_HELP)
    ] = None,
    benchmark: Annotated[
        str | None,
        Opt(help=f"Task sequence: {_names(BENCHMARKS)}.", show_default=plain_default("benchmark")),
    ] = None,
    tasks: Annotated[
        str | None,
        Opt(help="Comma-separated task list instead of a benchmark (sphere envs lists the names)."),
    ] = None,
    method: Annotated[
        str | None,
        Opt(
            help=f"Method (sphere methods describes each): {_names(METHODS)}.",
            show_default=plain_default("method"),
        ),
    ] = None,
    arch: Annotated[
        str | None,
        Opt(
            help=f"Override the method's architecture: {_names(ARCHS)}.",
            show_default="the method's",
        ),
    ] = None,
    reg: Annotated[
        str | None,
        Opt(
            help="Override the method's plug-ins: 'none', or plug-in names joined with '+' (e.g."
            f" sphere+cbp) from: {_names(_PLUGINS)}.",
            show_default="the method's",
        ),
    ] = None,
    rho: Annotated[
        float | None,
        Opt(
            help="SPHERE strength: ρ in grad and loss mode, λ in fixed mode.",
            show_default=preset_default("rho"),
        ),
    ] = None,
    sphere_mode: Annotated[
        str | None,
        Opt(
            help=f"How SPHERE joins the policy loss: {_names(CHOICES['sphere_mode'])}.",
            show_default=preset_default("sphere_mode"),
        ),
    ] = None,
    sphere_variant: Annotated[
        str | None,
        Opt(
            help=f"Which features SPHERE penalises: {_names(CHOICES['sphere_variant'])}.",
            show_default=plain_default("sphere_variant"),
        ),
    ] = None,
    pcgrad: Annotated[
        bool | None,
        Opt(
            "--pcgrad/--no-pcgrad",
            help="Project the SPHERE gradient off the policy gradient when they conflict.",
            show_default=plain_default("pcgrad"),
        ),
    ] = None,
    protocol: Annotated[
        str | None,
        Opt(
            help="crl: one agent through the whole sequence; rl: a fresh agent per task.",
            show_default=plain_default("protocol"),
        ),
    ] = None,
    preset: Annotated[
        str | None,
        Opt(
            help=f"Hyper-parameter preset: {_names(PRESETS)} (quick: minutes on a CPU). Without"
            " it: the benchmark's; for --tasks, the tasks' (MetaWorld and gym: cw10, H1: hb5)."
            " Flags that a preset sets show each preset's value as their default.",
            show_default="the benchmark's or the tasks'",
        ),
    ] = None,
    seed: Annotated[int | None, Opt(help="Run seed.", show_default=plain_default("seed"))] = None,
    steps_per_task: Annotated[
        int | None,
        Opt(help="Env steps per task.", show_default=preset_default("steps_per_task")),
    ] = None,
    num_envs: Annotated[
        int | None, Opt(help="Parallel environments.", show_default=preset_default("num_envs"))
    ] = None,
    eval_interval: Annotated[
        int | None,
        Opt(help="Env steps between evaluations.", show_default=preset_default("eval_interval")),
    ] = None,
    eval_episodes: Annotated[
        int | None,
        Opt(help="Episodes per evaluation.", show_default=preset_default("eval_episodes")),
    ] = None,
    env_backend: Annotated[
        str | None,
        Opt(
            help=f"Simulator: {_names(CHOICES['env_backend'])}. metaworld is the reference"
            " package, envpool its C++ port (parity-checked tasks only), auto picks envpool where"
            " parity holds.",
            show_default=plain_default("env_backend"),
        ),
    ] = None,
    device: Annotated[
        str | None, Opt(help="cpu, cuda or cuda:N.", show_default=plain_default("device"))
    ] = None,
    config: Annotated[
        Path | None,
        Opt(
            help="JSON file with more configuration keys (any field of ExperimentConfig; flags"
            " win)."
        ),
    ] = None,
    plugin: Annotated[
        list[str] | None,
        Opt(
            "--plugin",
            metavar="MODULE",
            help="Import this module (a name or a .py file) first, so that the methods and"
            " plug-ins it registers can be used. Repeat for several.",
        ),
    ] = None,
    out: Annotated[Path, Opt(help="Parent directory of run directories.")] = Path("runs"),
    resume: Annotated[Path | None, Opt(help="Continue the run in this directory.")] = None,
    allow_config_change: Annotated[
        bool,
        Opt(
            "--allow-config-change",
            help="With --resume: accept configuration keys changed since the run started (by"
            " flags or an edited config.json; not seed, method or architecture) and record the"
            " change in run.json.",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        Opt(
            "--dry-run",
            help="Print the resolved configuration as JSON (usable as --config) and exit;"
            " creates nothing.",
        ),
    ] = False,
    quiet: Annotated[bool, Opt("--quiet", help="No progress display.")] = False,
    track: Annotated[
        str | None,
        Opt(
            help="Also log the configuration, scalars, summary files and figures to W&B or MLflow (the"
            " package extras wandb and mlflow); offline by default, see docs/training.md. Not"
            " part of the run's configuration.",
            metavar="wandb|mlflow",
        ),
    ] = None,
) -> None:
    """Train on a task sequence (CRL or RL protocol), evaluating, diagnosing and checkpointing.

    Re-running the same command continues the run it created (same directory under --out).
    Configuration: defaults ← preset ← --config file ← flags ← KEY=VALUE overrides.
    """
    from sphere_rl.continual.runner import (
        ContinualRunner,
        ResumeError,
        RunInterrupted,
        check_sequence,
        decide_open,
        find_run_dir,
    )

    overrides, conflict = _overrides(config, config_flags(train, ctx.params), assignments)
    # A resumed run's plug-ins come from its run.json unless --plugin is given.
    modules = (
        load_plugins_or_fail(plugin) if resume is None else load_run_plugins_or_fail(plugin, resume)
    )
    # Everything is checked before the run directory is created or touched; the sequence once,
    # here (the runner is given what this check found).
    cfg = _resolve_config(overrides, conflict, resume)
    try:
        sequence = check_sequence(cfg)
    except ConfigError as err:
        fail(str(err))
    if allow_config_change and resume is None:
        fail("--allow-config-change needs --resume RUN (a new run has nothing to change)")
    if resume is None:
        check_out_dir(out)
        run_dir = find_run_dir(cfg, out)  # run_dir_name, or a same-config run's old name
    else:
        run_dir = resume
        if not os.access(resume, os.W_OK | os.X_OK):  # also a read-only file system, even as root
            fail(f"--resume {resume}: the run directory is read-only (no permission to write in"
                 " it); make it writable, then run the same command again")  # fmt: skip
    _check_device(cfg, resume)
    if track is not None:
        check_tracker_or_fail(track)
    if dry_run:
        try:  # the decision the real command takes, without touching anything
            decision = decide_open(cfg, run_dir, allow_config_change)
        except (ResumeError, RunFileError) as err:
            fail(str(err))
        _print_dry_run(cfg, sequence, run_dir, decision)
        return
    try:
        with run_lock(run_dir):
            runner = ContinualRunner.open(
                cfg,
                run_dir,
                show_progress=not quiet,
                plugins=modules,
                allow_config_change=allow_config_change,
                tasks=sequence,
            )
            if runner.status.get("state") == "finished":
                console.print(f"{runner.run_dir} is already finished; nothing to do.")
                return
            console.print(_config_line(runner.cfg, runner.run_dir), highlight=False, soft_wrap=True)
            status = runner.run(track)  # a bug inside training keeps its traceback (error.log)
    except (ConfigError, ResumeError, RunBusyError, RunFileError) as err:
        fail(str(err))
    except NonFiniteLossError as err:
        fail(str(err), code=3)
    except RunInterrupted as err:  # status.json says "interrupted"; 128 + signal, as the shell
        fail(f"{err}; {run_dir} is saved up to its last checkpoint, continue it with"
             f" sphere train --resume {run_dir}", code=128 + signal.Signals[err.signal_name])  # fmt: skip
    console.print(f"finished: {runner.run_dir} ({status['global_step']:,} env steps)")
    if runner.tracked is not None:
        console.print(f"tracked: {runner.tracked}", highlight=False, soft_wrap=True)


def _overrides(
    config: Path | None, flags: dict[str, Any], assignments: list[str] | None
) -> tuple[dict[str, Any], list[str]]:
    """``(overrides, problems)``: defaults ← preset ← ``--config`` ← ``flags`` ← KEY=VALUE, and
    what is wrong with the combination (reported with the configuration's other problems). A task
    list replaces the benchmark's sequence unless a benchmark is assigned beside it."""
    overrides: dict[str, Any] = read_config_file(config) if config is not None else {}
    overrides.update(flags)
    assigned = parse_assignments(assignments)
    problems = []
    if "benchmark" in flags and "tasks" in flags:
        problems.append("give --benchmark or --tasks, not both (--tasks replaces the sequence)")
    elif "tasks" in flags or ("tasks" in assigned and "benchmark" not in assigned):
        overrides["benchmark"] = None
    overrides.update(assigned)
    return overrides, problems


def _config_line(cfg: ExperimentConfig, run_dir: Path) -> str:
    """``config: preset quick; rho=0.05, seed=3 (defaults otherwise); all keys in DIR/config.json``:
    the keys that differ from :class:`ExperimentConfig`'s defaults (the preset's and the user's)."""
    resolved, defaults = cfg.to_dict(), _DEFAULTS.to_dict()
    changed = ", ".join(
        f"{k}={json.dumps(v)}"
        for k, v in resolved.items()
        if k != "preset" and v != defaults.get(k)
    )
    return (
        f"config: preset {cfg.preset or 'none'}; {changed or 'all defaults'}"
        f"{' (defaults otherwise)' if changed else ''}; all keys in {run_dir / 'config.json'}"
    )


def _resolve_config(
    overrides: dict[str, Any], problems: list[str], resume: Path | None
) -> ExperimentConfig:
    """The run's configuration: defaults ← preset ← overrides for a new run; for ``--resume``,
    the stored configuration ← overrides (the runner then refuses any key that changed but
    device and torch_threads). Exits 2 listing every problem."""
    base: dict[str, Any] = {}
    if resume is not None:
        if not (resume / "config.json").is_file():
            fail(f"--resume {resume}: not a run directory (no config.json); leave out --resume"
                 " to start a new run")  # fmt: skip
        try:
            base = read_json(resume / "config.json")
        except RunFileError as err:
            fail(str(err))
        if not isinstance(base, dict):
            fail(f"{resume / 'config.json'}: not a JSON object; the run directory is damaged")
        base = saved_config(base)
    problems = [*problems, *name_problems({**base, **overrides})]
    try:
        cfg = build_config({**base, **overrides})
    except ConfigError as err:
        problems = [*err.problems, *problems]
    else:
        if not problems:
            return cfg
    if len(problems) == 1:  # one mistake, one line
        fail(f"invalid configuration: {problems[0]}")
    fail(str(ConfigError.listing(problems)))


def _check_device(cfg: ExperimentConfig, resume: Path | None) -> None:
    """Exit 2 if the configured device is missing here (before the run directory is touched)."""
    if not cfg.device.startswith("cuda"):
        return
    import torch

    index = int(cfg.device.partition(":")[2] or 0)
    if torch.cuda.is_available() and index < torch.cuda.device_count():
        return
    found = f"{torch.cuda.device_count()} CUDA device(s)" if torch.cuda.is_available() else (
        "no CUDA (torch.cuda.is_available() is False)")  # fmt: skip
    if resume is None:
        fail(f"--device {cfg.device}: {found} on this machine; use --device cpu")
    fail(f"{resume} trains on device {cfg.device!r}, but this machine has {found}. Resume it on"
         f" a machine with CUDA, or continue on CPU with --resume {resume} --device cpu")  # fmt: skip


def _print_dry_run(
    cfg: ExperimentConfig, tasks: list[str], run_dir: Path, decision: OpenDecision
) -> None:
    """What ``train`` would do (``decision``, the real command's) with the checked sequence
    ``tasks``: one line on stderr, the resolved configuration as JSON on stdout (usable as
    ``--config``). Nothing is created."""
    from sphere_rl.methods import resolve_method

    try:
        arch, plugins = resolve_method(cfg)
    except (ConfigError, ValueError) as err:
        fail(str(err))
    total = len(tasks) * cfg.iterations_per_task * cfg.steps_per_iteration
    state = {
        "new": "new run",
        "resume": f"resume a {decision.state} run at step {decision.global_step:,}",
        "finished": "already finished; nothing to do",
    }[decision.action]
    err_console.print(
        f"dry run ({state}): {run_dir}; preset {cfg.preset or 'none'}; {cfg.method} = {arch} +"
        f" {'+'.join(plugins) or 'no plug-ins'};"
        f" {cfg.protocol} on {len(tasks)} task(s) ({', '.join(tasks)}), {total:,} env steps",
        highlight=False,
        soft_wrap=True,
    )
    print(json.dumps(cfg.to_dict(), indent=2))


def evaluate_run(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    checkpoint: Annotated[
        str,
        Opt(
            help="latest, or a file name in checkpoints/. RL runs default to each task's own agent."
        ),
    ] = "latest",
    episodes: Annotated[int, Opt(help="Episodes per task.")] = 10,
    seed: Annotated[int, Opt(help="Evaluation seed.")] = 12345,
    video: Annotated[
        Path | None, Opt(help="Also save one captioned episode per task in this directory.")
    ] = None,
    video_format: Annotated[str, Opt(help="Video file format: gif or mp4.")] = "gif",
    as_json: Annotated[
        bool, Opt("--json", help="Print the results as JSON on stdout (and nothing else there).")
    ] = False,
    plugin: Annotated[
        list[str] | None,
        Opt("--plugin", metavar="MODULE", help="Import this module first (as for train)."),
    ] = None,
    video_every: Annotated[
        int, Opt(help="Keep one frame every N env steps (2: about real time at 25 fps).")
    ] = 2,
) -> None:
    """Evaluate a checkpoint of a run on every task of its sequence (optionally with videos).

    For a CRL run one agent is evaluated on every task. For an RL run (a fresh agent per task),
    'latest' means each task's own final agent (task_XXX_end).
    """
    from sphere_rl.envs.gl import ensure_headless_gl, offscreen_gl_problem

    if video is not None:
        ensure_headless_gl()  # before MuJoCo is first imported (by the imports below)
        problem = offscreen_gl_problem()  # before the first episode, not after the evaluation
        if problem is not None:
            fail(problem)
    from sphere_rl.continual.loading import load_agent
    from sphere_rl.continual.seeding import env_options, evaluate_task
    from sphere_rl.continual.video import VIDEO_FORMATS

    if episodes < 1:
        fail(f"--episodes must be >= 1, got {episodes}")
    if video_format not in VIDEO_FORMATS:
        fail(f"--video-format must be one of {', '.join(VIDEO_FORMATS)}, got {video_format!r}")
    load_run_plugins_or_fail(plugin, run_dir)
    if video_every < 1:
        fail(f"--video-every must be >= 1, got {video_every}")
    try:
        agent, tasks, cfg = load_agent(run_dir, checkpoint)
        per_task = cfg.protocol == "rl" and checkpoint == "latest"
        agents = {
            j: load_agent(run_dir, f"task_{j:03d}_end")[0] if per_task else agent
            for j in range(len(tasks))
            if not per_task or (run_dir / "checkpoints" / f"task_{j:03d}_end.pt").is_file()
        }
    except (FileNotFoundError, ValueError) as err:
        fail(str(err))
    label = "task_XXX_end" if per_task else checkpoint
    results = {
        j: evaluate_task(task_agent, cfg, tasks[j], episodes, seed)
        for j, task_agent in agents.items()
    }
    if as_json:
        print_json({
            "run_dir": str(run_dir), "checkpoint": label, "episodes": episodes, "seed": seed,
            "tasks": [{"task": tasks[j], "success": r["success"], "return": r["return"]}
                      for j, r in results.items()],
            "mean_success": sum(r["success"] for r in results.values()) / max(1, len(results)),
        })  # fmt: skip
    else:
        table = name_table(f"{run_dir} [{label}]", "task", ["success", "return"])
        for j, result in results.items():
            table.add_row(tasks[j], f"{result['success']:.2f}", f"{result['return']:.1f}")
        console.print(table)
    if video is None:
        return
    # With --json, stdout carries the document only; the video lines go to stderr.
    out_console = err_console if as_json else console
    for j, task_agent in agents.items():
        path = video / f"{j:02d}-{tasks[j]}.{video_format}"
        try:
            options = {"every": video_every, **env_options(cfg, tasks[j])}
            recorded = _record_with_progress(task_agent, tasks[j], path, seed, options, out_console)
        except RuntimeError as err:
            fail(str(err))
        out_console.print(f"video: {path} (success {recorded['success']:.0f})")


def _record_with_progress(
    agent: Any, task: str, path: Path, seed: int, options: dict[str, Any], console: Any
) -> dict[str, float]:
    """``record_video`` with a progress bar over the episode's steps (plain lines when piped)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from sphere_rl.continual.video import record_video
    from sphere_rl.envs.registry import task_spec

    horizon = task_spec(task).max_episode_steps
    if not console.is_terminal:
        console.print(f"rendering {task} (up to {horizon} steps) -> {path}")
        return record_video(agent, task, path, seed, **options)
    columns = (TextColumn(f"rendering {task}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        bar = progress.add_task(task, total=horizon)
        return record_video(
            agent, task, path, seed, **options,
            on_step=lambda step: progress.update(bar, completed=step),
        )  # fmt: skip
