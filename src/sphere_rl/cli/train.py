"""``sphere train`` and ``sphere eval``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sphere_rl.algo.ppo import NonFiniteLossError
from sphere_rl.config import ConfigError, build_config

console = Console()
err_console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("eval")(evaluate_run)


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/bold red] {message}", highlight=False)
    raise typer.Exit(code)


Opt = typer.Option


def train(
    benchmark: Annotated[str | None, Opt(help="Task sequence: cw10, cw20, hb5.")] = None,
    tasks: Annotated[
        str | None, Opt(help="Comma-separated task list instead of a benchmark.")
    ] = None,
    method: Annotated[
        str | None, Opt(help="ppo, ppo10x, ln, topk_moe, dense_moe, ds_moe, sphere.")
    ] = None,
    arch: Annotated[str | None, Opt(help="Override the method's architecture.")] = None,
    reg: Annotated[
        str | None, Opt(help="Override the method's regularizer ('none' to disable).")
    ] = None,
    rho: Annotated[float | None, Opt(help="SPHERE strength ρ (or λ in fixed mode).")] = None,
    sphere_mode: Annotated[str | None, Opt(help="fixed, loss or grad.")] = None,
    sphere_variant: Annotated[str | None, Opt(help="last, all_layers, per_expert, gate.")] = None,
    pcgrad: Annotated[bool | None, Opt("--pcgrad/--no-pcgrad", help="PCGrad projection.")] = None,
    protocol: Annotated[
        str | None, Opt(help="crl (one agent) or rl (fresh agent per task).")
    ] = None,
    preset: Annotated[
        str | None, Opt(help="cw10, hb5 or quick (default: the benchmark's).")
    ] = None,
    seed: Annotated[int | None, Opt(help="Run seed.")] = None,
    steps_per_task: Annotated[int | None, Opt(help="Env steps per task.")] = None,
    num_envs: Annotated[int | None, Opt(help="Parallel environments.")] = None,
    eval_interval: Annotated[int | None, Opt(help="Env steps between evaluations.")] = None,
    eval_episodes: Annotated[int | None, Opt(help="Episodes per evaluation.")] = None,
    env_backend: Annotated[str | None, Opt(help="metaworld or envpool.")] = None,
    device: Annotated[str | None, Opt(help="cpu or cuda.")] = None,
    config: Annotated[Path | None, Opt(help="JSON file with more configuration keys.")] = None,
    out: Annotated[Path, Opt(help="Parent directory of run directories.")] = Path("runs"),
    resume: Annotated[Path | None, Opt(help="Continue the run in this directory.")] = None,
    quiet: Annotated[bool, Opt("--quiet", help="No progress display.")] = False,
) -> None:
    """Train on a task sequence (CRL or RL protocol), evaluating, diagnosing and checkpointing.

    Re-running the same command continues the run it created (same directory under --out).
    """
    from sphere_rl.continual.runner import ContinualRunner, ResumeError, run_dir_name

    overrides: dict[str, Any] = {}
    if config is not None:
        try:
            overrides.update(json.loads(config.read_text()))
        except (OSError, json.JSONDecodeError) as err:
            fail(f"cannot read --config {config}: {err}")
    flags = {
        "benchmark": benchmark, "tasks": tasks, "method": method, "arch": arch, "reg": reg,
        "rho": rho, "sphere_mode": sphere_mode, "sphere_variant": sphere_variant,
        "pcgrad": pcgrad, "protocol": protocol, "preset": preset, "seed": seed,
        "steps_per_task": steps_per_task, "num_envs": num_envs, "eval_interval": eval_interval,
        "eval_episodes": eval_episodes, "env_backend": env_backend, "device": device,
    }  # fmt: skip
    overrides.update({k: v for k, v in flags.items() if v is not None})
    if tasks is not None and benchmark is None:
        overrides["benchmark"] = None
    try:
        if resume is not None:
            cfg = build_config(overrides) if overrides else None
            runner = ContinualRunner.open(cfg, resume, show_progress=not quiet)
        else:
            cfg = build_config(overrides)
            runner = ContinualRunner.open(cfg, out / run_dir_name(cfg), show_progress=not quiet)
        if runner.status.get("state") == "finished":
            console.print(f"{runner.run_dir} is already finished; nothing to do.")
            return
        status = runner.run()
    except (ConfigError, ResumeError, ValueError, FileNotFoundError) as err:
        fail(str(err))
    except NonFiniteLossError as err:
        fail(str(err), code=3)
    console.print(f"finished: {runner.run_dir} ({status['global_step']:,} env steps)")


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
    video_every: Annotated[
        int, Opt(help="Keep one frame every N env steps (2: about real time at 25 fps).")
    ] = 2,
) -> None:
    """Evaluate a checkpoint of a run on every task of its sequence (optionally with videos).

    For a CRL run one agent is evaluated on every task. For an RL run (a fresh agent per task),
    ``latest`` means each task's own final agent (``task_XXX_end``).
    """
    from sphere_rl.continual.evaluation import evaluate
    from sphere_rl.continual.loading import load_agent
    from sphere_rl.continual.video import VIDEO_FORMATS
    from sphere_rl.envs.registry import task_options
    from sphere_rl.envs.render import ensure_headless_gl

    if video is not None:
        ensure_headless_gl()  # before MuJoCo is first imported
    if episodes < 1:
        fail(f"--episodes must be >= 1, got {episodes}")
    if video_format not in VIDEO_FORMATS:
        fail(f"--video-format must be one of {', '.join(VIDEO_FORMATS)}, got {video_format!r}")
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
    table = Table(title=f"{run_dir} [{'task_XXX_end' if per_task else checkpoint}]")
    for column in ("task", "success", "return"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for j, task_agent in agents.items():
        options = task_options(tasks[j], h1_feet=cfg.h1_feet)
        result = evaluate(task_agent, tasks[j], episodes, seed, cfg.env_backend, **options)
        table.add_row(tasks[j], f"{result['success']:.2f}", f"{result['return']:.1f}")
    console.print(table)
    if video is None:
        return
    for j, task_agent in agents.items():
        path = video / f"{j:02d}-{tasks[j]}.{video_format}"
        try:
            options = {"every": video_every, **task_options(tasks[j], h1_feet=cfg.h1_feet)}
            recorded = _record_with_progress(task_agent, tasks[j], path, seed, options)
        except RuntimeError as err:
            fail(str(err))
        console.print(f"video: {path} (success {recorded['success']:.0f})")


def _record_with_progress(
    agent: Any, task: str, path: Path, seed: int, options: dict[str, Any]
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
