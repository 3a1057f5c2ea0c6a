"""``sphere train`` and ``sphere eval``."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer

from sphere_rl.algo.ppo import NonFiniteLossError
from sphere_rl.cli.output import make_console, name_table, print_json
from sphere_rl.config import CHOICES, PRESETS, ConfigError, ExperimentConfig, build_config
from sphere_rl.envs.registry import BENCHMARKS
from sphere_rl.methods import ARCHS, CALLBACKS, METHODS, REGULARIZERS

console = make_console()
err_console = make_console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("eval")(evaluate_run)


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/bold red] {message}", highlight=False)
    raise typer.Exit(code)


Opt = typer.Option


def _names(names) -> str:
    return ", ".join(names)


def _preset_values(key: str) -> str:
    """``"preset's: cw10 1,000,000, hb5 10,000,000, quick 20,000"``: each preset's ``key``."""
    default = getattr(ExperimentConfig(), key)
    values = {name: preset.get(key, default) for name, preset in PRESETS.items()}
    return "preset's: " + ", ".join(f"{name} {v:,}" for name, v in values.items())


_DEFAULTS = ExperimentConfig()
_PLUGINS = sorted({*REGULARIZERS, *CALLBACKS})
# Help strings come from the registries, so a new method, plug-in or backend shows up by itself.
HELP = {
    "benchmark": f"Task sequence: {_names(BENCHMARKS)}.",
    "tasks": "Comma-separated task list instead of a benchmark (sphere envs lists the names).",
    "method": f"Method (sphere methods describes each): {_names(METHODS)}.",
    "arch": f"Override the method's architecture: {_names(ARCHS)}.",
    "reg": "Override the method's plug-ins: 'none', or plug-in names joined with '+' (e.g."
    f" sphere+cbp) from: {_names(_PLUGINS)}.",
    "rho": "SPHERE strength: ρ in grad and loss mode, λ in fixed mode.",
    "sphere_mode": f"How SPHERE joins the policy loss: {_names(CHOICES['sphere_mode'])}.",
    "sphere_variant": f"Which features SPHERE penalises: {_names(CHOICES['sphere_variant'])}.",
    "pcgrad": "Project the SPHERE gradient off the policy gradient when they conflict.",
    "protocol": "crl: one agent through the whole sequence; rl: a fresh agent per task.",
    "preset": f"Hyper-parameter preset: {_names(PRESETS)} (quick: minutes on a CPU).",
    "seed": "Run seed.",
    "steps_per_task": "Env steps per task.",
    "num_envs": "Parallel environments.",
    "eval_interval": "Env steps between evaluations.",
    "eval_episodes": "Episodes per evaluation.",
    "env_backend": f"Simulator: {_names(CHOICES['env_backend'])}. metaworld is the reference"
    " package, envpool its C++ port (parity-checked tasks only), auto picks envpool where parity"
    " holds.",
    "device": "cpu, cuda or cuda:N.",
    "config": "JSON file with more configuration keys (any field of ExperimentConfig; flags win).",
    "plugin": "Import this module (a name or a .py file) first, so that the methods and plug-ins"
    " it registers can be used. Repeat for several.",
}


def _default(key: str) -> str:
    return str(getattr(_DEFAULTS, key))


def train(
    benchmark: Annotated[
        str | None, Opt(help=HELP["benchmark"], show_default=_default("benchmark"))
    ] = None,
    tasks: Annotated[str | None, Opt(help=HELP["tasks"])] = None,
    method: Annotated[str | None, Opt(help=HELP["method"], show_default=_default("method"))] = None,
    arch: Annotated[str | None, Opt(help=HELP["arch"], show_default="the method's")] = None,
    reg: Annotated[str | None, Opt(help=HELP["reg"], show_default="the method's")] = None,
    rho: Annotated[float | None, Opt(help=HELP["rho"], show_default=_default("rho"))] = None,
    sphere_mode: Annotated[
        str | None, Opt(help=HELP["sphere_mode"], show_default=_default("sphere_mode"))
    ] = None,
    sphere_variant: Annotated[
        str | None, Opt(help=HELP["sphere_variant"], show_default=_default("sphere_variant"))
    ] = None,
    pcgrad: Annotated[
        bool | None,
        Opt("--pcgrad/--no-pcgrad", help=HELP["pcgrad"], show_default=_default("pcgrad")),
    ] = None,
    protocol: Annotated[
        str | None, Opt(help=HELP["protocol"], show_default=_default("protocol"))
    ] = None,
    preset: Annotated[str | None, Opt(help=HELP["preset"], show_default="the benchmark's")] = None,
    seed: Annotated[int | None, Opt(help=HELP["seed"], show_default=_default("seed"))] = None,
    steps_per_task: Annotated[
        int | None, Opt(help=HELP["steps_per_task"], show_default=_preset_values("steps_per_task"))
    ] = None,
    num_envs: Annotated[
        int | None, Opt(help=HELP["num_envs"], show_default=_preset_values("num_envs"))
    ] = None,
    eval_interval: Annotated[
        int | None, Opt(help=HELP["eval_interval"], show_default=_preset_values("eval_interval"))
    ] = None,
    eval_episodes: Annotated[
        int | None, Opt(help=HELP["eval_episodes"], show_default=_preset_values("eval_episodes"))
    ] = None,
    env_backend: Annotated[
        str | None, Opt(help=HELP["env_backend"], show_default=_default("env_backend"))
    ] = None,
    device: Annotated[str | None, Opt(help=HELP["device"], show_default=_default("device"))] = None,
    config: Annotated[Path | None, Opt(help=HELP["config"])] = None,
    plugin: Annotated[
        list[str] | None, Opt("--plugin", metavar="MODULE", help=HELP["plugin"])
    ] = None,
    out: Annotated[Path, Opt(help="Parent directory of run directories.")] = Path("runs"),
    resume: Annotated[Path | None, Opt(help="Continue the run in this directory.")] = None,
    dry_run: Annotated[
        bool,
        Opt(
            "--dry-run",
            help="Print the resolved configuration as JSON (usable as --config) and exit;"
            " creates nothing.",
        ),
    ] = False,
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
    load_plugins_or_fail(plugin)
    if dry_run:
        _dry_run(overrides, out, resume)
        return
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


def load_plugins_or_fail(specs: list[str] | None) -> list[ModuleType]:
    """Import the ``--plugin`` modules; a missing or broken one is a user error (exit 2)."""
    from sphere_rl.plugins import PluginError, load_plugins

    try:
        return load_plugins(specs or [])
    except PluginError as err:
        fail(str(err))
        raise  # unreachable: fail() exits


def _dry_run(overrides: dict[str, Any], out: Path, resume: Path | None) -> None:
    """Resolve and validate the configuration as ``train`` would, print it, touch nothing."""
    from sphere_rl.config import config_diff
    from sphere_rl.continual.runner import run_dir_name
    from sphere_rl.envs import resolve_tasks
    from sphere_rl.methods import resolve_method

    try:
        if resume is not None:
            saved_path = resume / "config.json"
            if not saved_path.is_file():
                fail(f"{resume} is not a run directory (no config.json)")
            cfg = build_config(json.loads(saved_path.read_text()))
            diff = (
                config_diff(cfg.to_dict(), build_config(overrides).to_dict()) if overrides else []
            )
            if diff:
                fail(f"{resume} was started with a different configuration; differing keys: {diff}")
            run_dir = resume
        else:
            cfg = build_config(overrides)
            run_dir = out / run_dir_name(cfg)
        arch, plugins = resolve_method(cfg)
        tasks = resolve_tasks(cfg.benchmark if cfg.tasks is None else None, cfg.tasks)
    except (ConfigError, ValueError, OSError) as err:
        fail(str(err))
    state = "resume" if (run_dir / "config.json").exists() else "new run"
    total = len(tasks) * cfg.iterations_per_task * cfg.steps_per_iteration
    err_console.print(
        f"dry run ({state}): {run_dir}; {cfg.method} = {arch} + {'+'.join(plugins) or 'no plug-ins'};"
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
        Path | None, Opt(help="Also save one episode per task as a GIF in this directory.")
    ] = None,
    as_json: Annotated[
        bool, Opt("--json", help="Print the results as JSON on stdout (and nothing else there).")
    ] = False,
    plugin: Annotated[
        list[str] | None,
        Opt("--plugin", metavar="MODULE", help="Import this module first (as for train)."),
    ] = None,
) -> None:
    """Evaluate a checkpoint of a run on every task of its sequence (optionally with videos).

    For a CRL run one agent is evaluated on every task. For an RL run (a fresh agent per task),
    'latest' means each task's own final agent (task_XXX_end).
    """
    from sphere_rl.continual.evaluation import evaluate, record_video
    from sphere_rl.continual.loading import load_agent
    from sphere_rl.envs.render import ensure_headless_gl

    if video is not None:
        ensure_headless_gl()  # before MuJoCo is first imported
    if episodes < 1:
        fail(f"--episodes must be >= 1, got {episodes}")
    load_plugins_or_fail(plugin)
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
    results = {j: evaluate(task_agent, tasks[j], episodes, seed, cfg.env_backend)
               for j, task_agent in agents.items()}  # fmt: skip
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
        path = video / f"{j:02d}-{tasks[j]}.gif"
        try:
            recorded = record_video(task_agent, tasks[j], path, seed)
        except RuntimeError as err:
            fail(str(err))
        out_console.print(f"video: {path} (success {recorded['success']:.0f})")
